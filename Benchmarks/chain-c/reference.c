/* The C reference rates for Benchmarks/chain.sh: libsecp256k1 ECDSA signs and verifies per
 * second over the same keys and messages PeerStack uses (secret i = SHA-256("key" || i),
 * message i = SHA-256("message" || i)), and OpenSSL double SHA-256 of an 80-byte header with the
 * first 64 bytes hashed once (the midstate), on one core.
 *   reference KEYS SECONDS  ->  "secp256k1 sign/s verify/s" and "openssl MH/s" lines */
#include <openssl/sha.h>
#include <secp256k1.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec / 1e9;
}

static void derive(const char *label, int i, unsigned char out[32]) {
    unsigned char input[64];
    size_t n = strlen(label);
    memcpy(input, label, n);
    input[n] = (unsigned char)(i >> 24); input[n + 1] = (unsigned char)(i >> 16);
    input[n + 2] = (unsigned char)(i >> 8); input[n + 3] = (unsigned char)i;
    SHA256(input, n + 4, out);
}

int main(int argc, char **argv) {
    int keys = argc > 1 ? atoi(argv[1]) : 1000;
    double seconds = argc > 2 ? atof(argv[2]) : 2.0;
    secp256k1_context *ctx = secp256k1_context_create(SECP256K1_CONTEXT_SIGN | SECP256K1_CONTEXT_VERIFY);
    unsigned char (*secret)[32] = malloc(keys * 32), (*message)[32] = malloc(keys * 32);
    secp256k1_pubkey *pub = malloc(keys * sizeof *pub);
    secp256k1_ecdsa_signature *sig = malloc(keys * sizeof *sig);
    for (int i = 0; i < keys; i++) {
        derive("key", i, secret[i]);
        derive("message", i, message[i]);
        if (!secp256k1_ec_pubkey_create(ctx, &pub[i], secret[i])) return 1;
    }
    long signs = 0;
    double start = now();
    while (now() - start < seconds / 2)
        for (int i = 0; i < keys; i++, signs++) secp256k1_ecdsa_sign(ctx, &sig[i], message[i], secret[i], NULL, NULL);
    double signTime = now() - start;
    long verifies = 0, bad = 0;
    start = now();
    while (now() - start < seconds / 2)
        for (int i = 0; i < keys; i++, verifies++) bad += !secp256k1_ecdsa_verify(ctx, &sig[i], message[i], &pub[i]);
    double verifyTime = now() - start;
    printf("secp256k1 %.0f %.0f %ld\n", signs / signTime, verifies / verifyTime, bad);

    unsigned char header[80] = {1};
    SHA256_CTX mid;
    SHA256_Init(&mid);
    SHA256_Update(&mid, header, 64);
    unsigned char first[32], second[32];
    uint32_t nonce = 0;
    unsigned long best = 0;
    start = now();
    long hashes = 0;
    while (now() - start < seconds / 2) {
        for (int k = 0; k < 100000; k++, nonce++, hashes++) {
            SHA256_CTX c = mid;
            memcpy(header + 76, &nonce, 4);
            SHA256_Update(&c, header + 64, 16);
            SHA256_Final(first, &c);
            SHA256_CTX d;
            SHA256_Init(&d);
            SHA256_Update(&d, first, 32);
            SHA256_Final(second, &d);
            best |= second[31];
        }
    }
    printf("openssl %.3f %lu\n", hashes / (now() - start) / 1e6, best & 1);
    return 0;
}
