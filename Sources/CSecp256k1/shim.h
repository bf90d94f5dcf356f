// libsecp256k1 from Debian's libsecp256k1-dev (0.2.0: ECDSA, extrakeys, schnorrsig).
#include <secp256k1.h>
#include <secp256k1_extrakeys.h>
#include <secp256k1_schnorrsig.h>
