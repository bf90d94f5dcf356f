// OpenSSL's libcrypto (Debian's libssl-dev) for the miner's SHA-256: its SHA256_CTX can be
// copied after the first 64 header bytes (the midstate), which swift-crypto's API cannot do
// without a heap copy per nonce.
#define OPENSSL_SUPPRESS_DEPRECATED 1
#include <openssl/sha.h>
