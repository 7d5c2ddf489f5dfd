/* rdkgen idle: N connections that each send one ApiVersions, then stay silent. */
#include "rdkgen.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <poll.h>
#include <sys/socket.h>

/* -- idle connections ------------------------------------------------------ */

/* ApiVersions v0 with correlation id 1 and client id "rdkgen-idle": what a
 * client sends first, so every connection is one the broker has served. */
static const unsigned char API_VERSIONS[] = {
    0, 0, 0, 21, 0, 18, 0, 0, 0, 0, 0, 1, 0, 11,
    'r', 'd', 'k', 'g', 'e', 'n', '-', 'i', 'd', 'l', 'e'};

static int read_full(int fd, unsigned char *buf, size_t n) {
    size_t got = 0;
    while (got < n) {
        ssize_t r = recv(fd, buf + got, n - got, 0);
        if (r <= 0) return -1;
        got += (size_t)r;
    }
    return 0;
}

static int idle_one(const struct addrinfo *ai) {
    int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return -1;
    struct timeval tv = {30, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    unsigned char hdr[8];
    if (connect(fd, ai->ai_addr, ai->ai_addrlen) ||
        send(fd, API_VERSIONS, sizeof API_VERSIONS, MSG_NOSIGNAL) != (ssize_t)sizeof API_VERSIONS ||
        read_full(fd, hdr, 8)) {
        close(fd);
        return -1;
    }
    uint32_t size = ntohl(*(uint32_t *)hdr);
    if (size < 4 || size > 1 << 20) {
        close(fd);
        return -1;
    }
    unsigned char *rest = malloc(size - 4 + 1);
    int bad = read_full(fd, rest, size - 4);
    free(rest);
    if (bad) {
        close(fd);
        return -1;
    }
    return fd;
}

int idle_mode(const opts_t *o) {
    raise_nofile();
    char host[256];
    snprintf(host, sizeof host, "%s", o->bootstrap);
    char *colon = strrchr(host, ':');
    if (!colon) usage_exit("--bootstrap: expected HOST:PORT");
    *colon = 0;
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *ai;
    if (getaddrinfo(host, colon + 1, &hints, &ai)) usage_exit("--bootstrap: cannot resolve");
    int *fds = calloc((size_t)o->connections, sizeof *fds);
    long open_n = 0;
    double t0 = now_s();
    char why[200] = "";
    for (long i = 0; i < o->connections; i++) {
        int fd = idle_one(ai);
        if (fd < 0) {
            snprintf(why, sizeof why, "connection %ld: %s", i + 1, strerror(errno));
            note_error(why);
            break;
        }
        fds[open_n++] = fd;
    }
    double connect_s = now_s() - t0;
    printf("{\"ready\": true, \"connections\": %ld, \"connect_s\": %.3f, ", open_n, connect_s);
    errors_json();
    printf("}\n");
    fflush(stdout);
    /* Hold until the harness closes stdin (or --duration passes). */
    double end = o->duration > 0 ? now_s() + o->duration : 1e300;
    char buf[64];
    while (now_s() < end) {
        struct pollfd pfd = {0, POLLIN, 0};
        if (poll(&pfd, 1, 200) > 0 && read(0, buf, sizeof buf) <= 0) break;
    }
    /* Which ones the broker closed meanwhile (EOF or error waiting). */
    long alive = 0;
    for (long i = 0; i < open_n; i++) {
        struct pollfd pfd = {fds[i], POLLIN | POLLRDHUP, 0};
        if (poll(&pfd, 1, 0) == 0) alive++;
    }
    printf("{\"mode\": \"idle\", \"connections\": %ld, \"alive\": %ld, \"connect_s\": %.3f, ",
           open_n, alive, connect_s);
    errors_json();
    printf("}\n");
    fflush(stdout);
    _exit(0);
}

