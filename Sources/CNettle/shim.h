// Nettle from Debian's nettle-dev: RIPEMD-160 (which swift-crypto does not offer) and ARCFOUR
// (RC4, for BitTorrent's Message Stream Encryption); and GMP, which nettle-dev brings, for
// MSE's 768-bit Diffie-Hellman (mpz_powm_sec, constant time).
#include <nettle/ripemd160.h>
#include <nettle/arcfour.h>
// MD4 for eDonkey's ed2k hash (its part hashes and the hash of hashes).
#include <nettle/md4.h>
#include <gmp.h>
