// Nettle from Debian's nettle-dev, for RIPEMD-160 (which swift-crypto does not offer).
#include <nettle/ripemd160.h>
