/* C reference: Unix seqpacket socket at a path; one send and one recv per message (the
 * kernel keeps the boundaries, so read_full of SIZE bytes is exactly one message). The
 * program is unix_stream.c with the other socket type. */
#define UNIX_SOCKET_TYPE SOCK_SEQPACKET
#include "unix_stream.c"
