// zlib (Debian zlib1g-dev): deflate for Gnutella's compressed connections, QRP patches and GGEP.
#include <zlib.h>
