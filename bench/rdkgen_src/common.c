/* rdkgen: the histogram, options, helpers shared by every mode, and main(). */
#include "rdkgen.h"

#include <getopt.h>

/* -- histogram ------------------------------------------------------------ */

static int hist_index(int64_t us) {
    if (us < 1) us = 1;
    int k = (int)(log((double)us) / log(HIST_BASE));
    return k >= HIST_BUCKETS ? HIST_BUCKETS - 1 : k;
}

void hist_add(hist_t *h, int64_t us) {
    h->counts[hist_index(us)]++;
    h->n++;
    h->sum_us += (double)us;
    if (us > h->max_us) h->max_us = us;
}

void hist_merge(hist_t *into, const hist_t *from) {
    for (int i = 0; i < HIST_BUCKETS; i++) into->counts[i] += from->counts[i];
    into->n += from->n;
    into->sum_us += from->sum_us;
    if (from->max_us > into->max_us) into->max_us = from->max_us;
}

/* The upper edge of the bucket holding the q-th sample, in ms (at most 1% high). */
double hist_pct_ms(const hist_t *h, double q) {
    if (h->n == 0) return 0;
    uint64_t rank = (uint64_t)(q * (double)h->n);
    if (rank >= h->n) rank = h->n - 1;
    uint64_t seen = 0;
    for (int i = 0; i < HIST_BUCKETS; i++) {
        seen += h->counts[i];
        if (seen > rank) {
            double edge = pow(HIST_BASE, i + 1) / 1000.0;
            double mx = (double)h->max_us / 1000.0;
            return edge < mx ? edge : mx;
        }
    }
    return (double)h->max_us / 1000.0;
}

void hist_json(const hist_t *h) {
    printf("\"samples\": %llu, \"p50_ms\": %.3f, \"p99_ms\": %.3f, \"p999_ms\": %.3f, "
           "\"max_ms\": %.3f, \"mean_ms\": %.3f, \"hist\": [",
           (unsigned long long)h->n, hist_pct_ms(h, 0.50), hist_pct_ms(h, 0.99),
           hist_pct_ms(h, 0.999), (double)h->max_us / 1000.0,
           h->n ? h->sum_us / (double)h->n / 1000.0 : 0.0);
    int first = 1;
    for (int i = 0; i < HIST_BUCKETS; i++) {
        if (!h->counts[i]) continue;
        printf("%s[%d, %llu]", first ? "" : ", ", i, (unsigned long long)h->counts[i]);
        first = 0;
    }
    printf("]");
}

/* -- options -------------------------------------------------------------- */


void usage_exit(const char *msg) {
    fprintf(stderr, "rdkgen: %s\n"
            "usage: rdkgen produce|consume|fleet|idle|group|e2e --bootstrap HOST:PORT [options]\n"
            "       (see the comment at the top of bench/rdkgen_src/rdkgen.h)\n", msg);
    exit(2);
}

static long parse_long(const char *name, const char *v, long min) {
    char *end;
    errno = 0;
    long x = strtol(v, &end, 10);
    if (errno || *end || end == v || x < min) {
        char msg[256];
        snprintf(msg, sizeof msg, "--%s: expected an integer >= %ld, got '%s'", name, min, v);
        usage_exit(msg);
    }
    return x;
}

static double parse_double(const char *name, const char *v) {
    char *end;
    errno = 0;
    double x = strtod(v, &end);
    if (errno || *end || end == v || x < 0 || !isfinite(x)) {
        char msg[256];
        snprintf(msg, sizeof msg, "--%s: expected a number >= 0, got '%s'", name, v);
        usage_exit(msg);
    }
    return x;
}

opts_t parse_args(int argc, char **argv) {
    opts_t o = {0};
    if (argc < 2) usage_exit("no mode given");
    o.mode = argv[1];
    int fleet = !strcmp(o.mode, "fleet");
    if (!fleet && strcmp(o.mode, "produce") && strcmp(o.mode, "consume") &&
        strcmp(o.mode, "idle") && strcmp(o.mode, "group") && strcmp(o.mode, "e2e")) {
        char msg[128];
        snprintf(msg, sizeof msg, "unknown mode '%.40s'", o.mode);
        usage_exit(msg);
    }
    o.size = 1024;
    o.acks = fleet ? "all" : "1";
    o.linger_ms = fleet ? 0 : 5;
    o.batch_bytes = 1048576;
    o.idempotent = fleet;
    o.producers = 50;
    o.rate = fleet ? 200 : (!strcmp(o.mode, "group") ? 2000 : 0);
    o.duration = fleet || !strcmp(o.mode, "group") ? 10 : 0;
    o.warmup_s = fleet || !strcmp(o.mode, "group") ? 2 : 0;
    o.threads = 4;
    o.connections = 10000;
    o.members = 50;
    o.timeout = 10;
    o.group = "rdkgen-group";
    static const struct option longopts[] = {
        {"bootstrap", 1, 0, 'b'}, {"topic", 1, 0, 't'}, {"records", 1, 0, 'n'},
        {"size", 1, 0, 's'}, {"acks", 1, 0, 'a'}, {"linger-ms", 1, 0, 'l'},
        {"batch-bytes", 1, 0, 'B'}, {"rate", 1, 0, 'r'}, {"keys", 1, 0, 'k'},
        {"duration", 1, 0, 'd'}, {"idempotent", 0, 0, 'i'}, {"no-idempotent", 0, 0, 'I'},
        {"latency", 0, 0, 'L'}, {"warmup-s", 1, 0, 'w'}, {"timeout", 1, 0, 'T'},
        {"producers", 1, 0, 'p'}, {"threads", 1, 0, 'h'}, {"connections", 1, 0, 'c'},
        {"members", 1, 0, 'm'}, {"group", 1, 0, 'g'}, {"first-join", 0, 0, 'F'},
        {"leave", 0, 0, 'E'}, {"leave-after", 1, 0, 'A'}, {"debug", 1, 0, 'D'},
        {0, 0, 0, 0}};
    optind = 2;
    opterr = 0;
    int c;
    while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        switch (c) {
        case 'b': o.bootstrap = optarg; break;
        case 't': o.topic = optarg; break;
        case 'n': o.records = parse_long("records", optarg, 0); break;
        case 's': o.size = parse_long("size", optarg, 16); break;
        case 'a':
            if (strcmp(optarg, "0") && strcmp(optarg, "1") && strcmp(optarg, "all") &&
                strcmp(optarg, "-1"))
                usage_exit("--acks: expected 0, 1, all or -1");
            o.acks = optarg;
            break;
        case 'l': o.linger_ms = (int)parse_long("linger-ms", optarg, 0); break;
        case 'B': o.batch_bytes = parse_long("batch-bytes", optarg, 1); break;
        case 'r': o.rate = parse_double("rate", optarg); break;
        case 'k': o.keys = parse_long("keys", optarg, 0); break;
        case 'd': o.duration = parse_double("duration", optarg); break;
        case 'i': o.idempotent = 1; break;
        case 'I': o.idempotent = 0; break;
        case 'L': o.latency = 1; break;
        case 'w': o.warmup_s = parse_double("warmup-s", optarg); break;
        case 'T': o.timeout = parse_double("timeout", optarg); break;
        case 'p': o.producers = parse_long("producers", optarg, 1); break;
        case 'h': o.threads = parse_long("threads", optarg, 1); break;
        case 'c': o.connections = parse_long("connections", optarg, 1); break;
        case 'm': o.members = parse_long("members", optarg, 1); break;
        case 'g': o.group = optarg; break;
        case 'F': o.first_join = 1; break;
        case 'E': o.leave = 1; break;
        case 'A': o.leave_after = parse_double("leave-after", optarg); break;
        case 'D': o.debug = optarg; break;
        default: {
            char msg[128];
            snprintf(msg, sizeof msg, "unknown or incomplete option '%.60s'", argv[optind - 1]);
            usage_exit(msg);
        }
        }
    }
    if (optind < argc) usage_exit("unexpected positional argument");
    if (!o.bootstrap) usage_exit("--bootstrap is required");
    if (strcmp(o.mode, "idle") && !o.topic) usage_exit("--topic is required");
    if (!strcmp(o.mode, "produce") && !o.records && !o.duration)
        usage_exit("produce needs --records or --duration");
    if (!strcmp(o.mode, "consume") && !o.records) usage_exit("consume needs --records");
    if ((fleet || !strcmp(o.mode, "group") || !strcmp(o.mode, "e2e")) &&
        (o.rate <= 0 || o.duration <= 0))
        usage_exit("--rate and --duration must be > 0");
    if (o.first_join && strcmp(o.mode, "group")) usage_exit("--first-join is for group only");
    if ((o.leave || o.leave_after > 0) && !o.first_join)
        usage_exit("--leave and --leave-after are for group --first-join");
    if (o.leave_after > 0 && !o.leave) usage_exit("--leave-after needs --leave");
    if (o.debug && strcmp(o.mode, "group")) usage_exit("--debug is for group only");
    if (o.idempotent && strcmp(o.acks, "all") && strcmp(o.acks, "-1"))
        usage_exit("--idempotent needs --acks all");
    return o;
}

/* -- shared helpers ------------------------------------------------------- */

double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int64_t mono_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

double cpu_s(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
           (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

void sleep_s(double s) {
    if (s <= 0) return;
    struct timespec ts = {(time_t)s, (long)((s - (double)(time_t)s) * 1e9)};
    nanosleep(&ts, NULL);
}

void raise_nofile(void) {
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
}

/* Errors: a count and the first few distinct messages, from any thread. */
static pthread_mutex_t err_lock = PTHREAD_MUTEX_INITIALIZER;
long err_count;
static char err_first[3][200];

void note_error(const char *what) {
    pthread_mutex_lock(&err_lock);
    err_count++;
    for (int i = 0; i < 3; i++) {
        if (!err_first[i][0]) {
            snprintf(err_first[i], sizeof err_first[i], "%s", what);
            break;
        }
        if (!strncmp(err_first[i], what, sizeof err_first[i] - 1)) break;
    }
    pthread_mutex_unlock(&err_lock);
}

static void json_str(const char *s) {
    putchar('"');
    for (; *s; s++) {
        if (*s == '"' || *s == '\\') printf("\\%c", *s);
        else if ((unsigned char)*s < 0x20) printf("\\u%04x", *s);
        else putchar(*s);
    }
    putchar('"');
}

void errors_json(void) {
    printf("\"errors\": %ld, \"first_errors\": [", err_count);
    for (int i = 0, n = 0; i < 3; i++) {
        if (!err_first[i][0]) continue;
        if (n++) printf(", ");
        json_str(err_first[i]);
    }
    printf("]");
}

static void error_cb(rd_kafka_t *rk, int err, const char *reason, void *opaque) {
    (void)rk; (void)opaque;
    /* Transport errors at start-up (a broker still binding) are retried by the client. */
    if (err == RD_KAFKA_RESP_ERR__TRANSPORT || err == RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN)
        return;
    char buf[200];
    snprintf(buf, sizeof buf, "client: %s", reason);
    note_error(buf);
}

rd_kafka_conf_t *base_conf(const opts_t *o) {
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    char err[256];
    if (rd_kafka_conf_set(conf, "bootstrap.servers", o->bootstrap, err, sizeof err) ||
        rd_kafka_conf_set(conf, "log_level", "3", err, sizeof err)) {
        fprintf(stderr, "rdkgen: %s\n", err);
        exit(1);
    }
    rd_kafka_conf_set_error_cb(conf, error_cb);
    return conf;
}

void conf_set(rd_kafka_conf_t *conf, const char *k, const char *v) {
    char err[256];
    if (rd_kafka_conf_set(conf, k, v, err, sizeof err) != RD_KAFKA_CONF_OK) {
        fprintf(stderr, "rdkgen: %s=%s: %s\n", k, v, err);
        exit(1);
    }
}

void conf_setl(rd_kafka_conf_t *conf, const char *k, long v) {
    char buf[32];
    snprintf(buf, sizeof buf, "%ld", v);
    conf_set(conf, k, buf);
}

/* The topic's partition count, retried while a new topic gets its leaders. */
int topic_partitions(rd_kafka_t *rk, const char *topic) {
    rd_kafka_topic_t *rkt = rd_kafka_topic_new(rk, topic, NULL);
    double deadline = now_s() + 30;
    int n = 0;
    while (now_s() < deadline) {
        const struct rd_kafka_metadata *md;
        if (rd_kafka_metadata(rk, 0, rkt, &md, 10000) == RD_KAFKA_RESP_ERR_NO_ERROR) {
            if (md->topic_cnt == 1 && !md->topics[0].err) n = md->topics[0].partition_cnt;
            rd_kafka_metadata_destroy(md);
            if (n > 0) break;
        }
        sleep_s(0.1);
    }
    rd_kafka_topic_destroy(rkt);
    if (n <= 0) {
        fprintf(stderr, "rdkgen: topic %s has no partitions\n", topic);
        exit(1);
    }
    return n;
}

char *payload(long size, int seed) {
    char *p = malloc((size_t)size);
    for (long i = 0; i < size; i++) p[i] = (char)((i * 131 + seed * 17 + (i >> 8) * 7) & 0xFF);
    return p;
}


int main(int argc, char **argv) {
    if (argc == 2 && !strcmp(argv[1], "version")) {
        printf("librdkafka %s\n", rd_kafka_version_str());
        return 0;
    }
    opts_t o = parse_args(argc, argv);
    if (!strcmp(o.mode, "produce")) return produce_mode(&o);
    if (!strcmp(o.mode, "fleet")) return fleet_mode(&o);
    if (!strcmp(o.mode, "consume")) return consume_mode(&o);
    if (!strcmp(o.mode, "idle")) return idle_mode(&o);
    if (!strcmp(o.mode, "e2e")) return e2e_mode(&o);
    return group_mode(&o);
}

