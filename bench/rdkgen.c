/* rdkgen: a load generator in C over librdkafka, run by bench/run.py.
 *
 * No Python in the client path: the Python generator (bench/loadgen.py) needs
 * most of a core at one record per request, which made client-bound rows look
 * like broker figures. Every mode prints one JSON object on stdout (the idle
 * mode first prints a "ready" object) with the generator's own CPU.
 *
 *   rdkgen produce --bootstrap B --topic T [--records N] [--size 1024] [--acks 1]
 *                  [--linger-ms 5] [--batch-bytes 1048576] [--rate R] [--keys K]
 *                  [--duration S] [--idempotent] [--latency] [--warmup-s S]
 *   rdkgen consume --bootstrap B --topic T --records N [--timeout S]
 *   rdkgen fleet   --bootstrap B --topic T [--producers 50] [--rate 200 (each)]
 *                  [--size 1024] [--acks all] [--no-idempotent] [--linger-ms 0]
 *                  [--duration 10] [--warmup-s 2] [--threads 4]
 *   rdkgen idle    --bootstrap B [--connections 10000]   (holds them until stdin closes)
 *   rdkgen group   --bootstrap B --topic T [--members 50] [--rate 2000] [--size 1024]
 *                  [--duration 10] [--warmup-s 2] [--group G]
 *
 * Latencies go into one log-bucketed histogram (1% buckets, microseconds)
 * pooled over every producer or member; percentiles come from the pooled
 * counts, never from averaging per-producer percentiles. The buckets are in
 * the output ("hist": [[index, count], ...]) so runs in several processes can
 * be merged (bench/rdkgen.py).
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <math.h>
#include <netdb.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <librdkafka/rdkafka.h>

/* -- histogram ------------------------------------------------------------ */

#define HIST_BUCKETS 2048 /* 1.01^2047 us is far beyond any timeout */
#define HIST_BASE 1.01

typedef struct {
    uint64_t counts[HIST_BUCKETS];
    uint64_t n;
    int64_t max_us;
    double sum_us;
} hist_t;

static int hist_index(int64_t us) {
    if (us < 1) us = 1;
    int k = (int)(log((double)us) / log(HIST_BASE));
    return k >= HIST_BUCKETS ? HIST_BUCKETS - 1 : k;
}

static void hist_add(hist_t *h, int64_t us) {
    h->counts[hist_index(us)]++;
    h->n++;
    h->sum_us += (double)us;
    if (us > h->max_us) h->max_us = us;
}

static void hist_merge(hist_t *into, const hist_t *from) {
    for (int i = 0; i < HIST_BUCKETS; i++) into->counts[i] += from->counts[i];
    into->n += from->n;
    into->sum_us += from->sum_us;
    if (from->max_us > into->max_us) into->max_us = from->max_us;
}

/* The upper edge of the bucket holding the q-th sample, in ms (at most 1% high). */
static double hist_pct_ms(const hist_t *h, double q) {
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

static void hist_json(const hist_t *h) {
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

typedef struct {
    const char *mode, *bootstrap, *topic, *acks, *group;
    long records, keys, connections, producers, members, threads, batch_bytes, size;
    double rate, duration, warmup_s, timeout;
    int linger_ms, idempotent, latency;
} opts_t;

static void usage_exit(const char *msg) {
    fprintf(stderr, "rdkgen: %s\n"
            "usage: rdkgen produce|consume|fleet|idle|group --bootstrap HOST:PORT [options]\n"
            "       (see the comment at the top of bench/rdkgen.c)\n", msg);
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

static opts_t parse_args(int argc, char **argv) {
    opts_t o = {0};
    if (argc < 2) usage_exit("no mode given");
    o.mode = argv[1];
    int fleet = !strcmp(o.mode, "fleet");
    if (!fleet && strcmp(o.mode, "produce") && strcmp(o.mode, "consume") &&
        strcmp(o.mode, "idle") && strcmp(o.mode, "group")) {
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
        {"members", 1, 0, 'm'}, {"group", 1, 0, 'g'}, {0, 0, 0, 0}};
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
    if ((fleet || !strcmp(o.mode, "group")) && (o.rate <= 0 || o.duration <= 0))
        usage_exit("--rate and --duration must be > 0");
    if (o.idempotent && strcmp(o.acks, "all") && strcmp(o.acks, "-1"))
        usage_exit("--idempotent needs --acks all");
    return o;
}

/* -- shared helpers ------------------------------------------------------- */

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int64_t mono_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static double cpu_s(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
           (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

static void sleep_s(double s) {
    if (s <= 0) return;
    struct timespec ts = {(time_t)s, (long)((s - (double)(time_t)s) * 1e9)};
    nanosleep(&ts, NULL);
}

static void raise_nofile(void) {
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
}

/* Errors: a count and the first few distinct messages, from any thread. */
static pthread_mutex_t err_lock = PTHREAD_MUTEX_INITIALIZER;
static long err_count;
static char err_first[3][200];

static void note_error(const char *what) {
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

static void errors_json(void) {
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

static rd_kafka_conf_t *base_conf(const opts_t *o) {
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

static void conf_set(rd_kafka_conf_t *conf, const char *k, const char *v) {
    char err[256];
    if (rd_kafka_conf_set(conf, k, v, err, sizeof err) != RD_KAFKA_CONF_OK) {
        fprintf(stderr, "rdkgen: %s=%s: %s\n", k, v, err);
        exit(1);
    }
}

static void conf_setl(rd_kafka_conf_t *conf, const char *k, long v) {
    char buf[32];
    snprintf(buf, sizeof buf, "%ld", v);
    conf_set(conf, k, buf);
}

/* The topic's partition count, retried while a new topic gets its leaders. */
static int topic_partitions(rd_kafka_t *rk, const char *topic) {
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

static char *payload(long size, int seed) {
    char *p = malloc((size_t)size);
    for (long i = 0; i < size; i++) p[i] = (char)((i * 131 + seed * 17 + (i >> 8) * 7) & 0xFF);
    return p;
}

/* -- producers (produce and fleet) ---------------------------------------- */

/* What every delivery report of one thread's producers lands in. */
typedef struct {
    hist_t hist;
    atomic_long acked, measured;
} sink_t;

#define MEASURED ((void *)1) /* msg_opaque of a record sent after the warm-up */

static void dr_cb(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque) {
    (void)rk;
    sink_t *sink = opaque;
    if (m->err) {
        note_error(rd_kafka_err2str(m->err));
        return;
    }
    atomic_fetch_add(&sink->acked, 1);
    if (m->_private == MEASURED) {
        atomic_fetch_add(&sink->measured, 1);
        int64_t us = rd_kafka_message_latency(m);
        if (us >= 0) hist_add(&sink->hist, us);
    }
}

static rd_kafka_t *new_producer(const opts_t *o, sink_t *sink, int index) {
    rd_kafka_conf_t *conf = base_conf(o);
    conf_set(conf, "acks", o->acks);
    conf_setl(conf, "linger.ms", o->linger_ms);
    conf_setl(conf, "batch.size", o->batch_bytes);
    conf_set(conf, "batch.num.messages", "1000000");
    conf_set(conf, "queue.buffering.max.kbytes", "2097151");
    conf_set(conf, "queue.buffering.max.messages", "2000000");
    conf_setl(conf, "message.max.bytes", o->batch_bytes + 65536 > 1000000 ?
              o->batch_bytes + 65536 : 1000000);
    conf_set(conf, "enable.idempotence", o->idempotent ? "true" : "false");
    conf_set(conf, "message.timeout.ms", "120000");
    conf_set(conf, "socket.nagle.disable", "true");
    char id[64];
    snprintf(id, sizeof id, "rdkgen-%d-%d", (int)getpid(), index);
    conf_set(conf, "client.id", id);
    rd_kafka_conf_set_dr_msg_cb(conf, dr_cb);
    rd_kafka_conf_set_opaque(conf, sink);
    char err[256];
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof err);
    if (!rk) {
        fprintf(stderr, "rdkgen: rd_kafka_new: %s\n", err);
        exit(1);
    }
    return rk;
}

static int produce_mode(const opts_t *o) {
    sink_t *sink = calloc(1, sizeof *sink);
    rd_kafka_t *rk = new_producer(o, sink, 0);
    int parts = topic_partitions(rk, o->topic);
    char *value = payload(o->size, 1);
    long limit = o->records ? o->records : -1;
    long sent = 0, step = 0;
    const long chunk = 2000;
    double t0 = now_s(), c0 = cpu_s();
    double deadline = o->duration > 0 ? t0 + o->duration : 1e300;
    double measure_from = t0 + (o->latency ? o->warmup_s : 0);
    char key[32];
    while ((limit < 0 || sent < limit) && now_s() < deadline) {
        long n = chunk;
        if (limit >= 0 && limit - sent < n) n = limit - sent;
        if (o->rate > 0) {
            long allowed = (long)((now_s() - t0) * o->rate) - sent;
            if (allowed <= 0) {
                rd_kafka_poll(rk, 0);
                sleep_s(0.0002);
                continue;
            }
            if (allowed < n) n = allowed;
        }
        void *mark = o->latency && now_s() >= measure_from ? MEASURED : NULL;
        /* Unkeyed runs write chunks of records to one partition after another,
         * as loadgen.py's produce_batch does, so batches fill. */
        int32_t part = o->keys ? RD_KAFKA_PARTITION_UA : (int32_t)(step++ % parts);
        for (long i = 0; i < n; i++) {
            rd_kafka_resp_err_t e;
            if (o->keys) {
                int kl = snprintf(key, sizeof key, "k%08lu",
                                  (unsigned long)((sent * 2654435761UL) % (unsigned long)o->keys));
                e = rd_kafka_producev(rk, RD_KAFKA_V_TOPIC(o->topic), RD_KAFKA_V_PARTITION(part),
                                      RD_KAFKA_V_KEY(key, (size_t)kl),
                                      RD_KAFKA_V_VALUE(value, (size_t)o->size),
                                      RD_KAFKA_V_OPAQUE(mark), RD_KAFKA_V_END);
            } else {
                e = rd_kafka_producev(rk, RD_KAFKA_V_TOPIC(o->topic), RD_KAFKA_V_PARTITION(part),
                                      RD_KAFKA_V_VALUE(value, (size_t)o->size),
                                      RD_KAFKA_V_OPAQUE(mark), RD_KAFKA_V_END);
            }
            if (e == RD_KAFKA_RESP_ERR__QUEUE_FULL) {
                rd_kafka_poll(rk, 1);
                break;
            }
            if (e) {
                note_error(rd_kafka_err2str(e));
                break;
            }
            sent++;
        }
        rd_kafka_poll(rk, 0);
        if (err_count > 1000) break;
    }
    rd_kafka_flush(rk, 180000);
    int unflushed = rd_kafka_outq_len(rk);
    double wall = now_s() - t0, cpu = cpu_s() - c0;
    long acked = atomic_load(&sink->acked);
    printf("{\"mode\": \"produce\", \"records\": %ld, \"bytes\": %ld, \"records_per_s\": %.1f, "
           "\"mib_per_s\": %.3f, \"unflushed\": %d, \"wall_s\": %.3f, \"client_cpu_cores\": %.3f, ",
           acked, acked * o->size, (double)acked / wall,
           (double)acked * (double)o->size / wall / 1048576.0, unflushed, wall, cpu / wall);
    if (o->latency) {
        hist_json(&sink->hist);
        printf(", ");
    }
    errors_json();
    printf("}\n");
    rd_kafka_destroy(rk);
    return 0;
}

/* fleet: each thread owns producers i % threads and wakes when a delivery
 * report is queued for one of them (librdkafka writes the producer's index to
 * the thread's pipe when its queue turns non-empty), or when one is due to
 * send. Latency is rd_kafka_message_latency at that wake-up: produce() call to
 * acknowledgement. */
typedef struct {
    const opts_t *o;
    int tid, nthreads;
    rd_kafka_t **rks;
    int pipefd[2];
    sink_t sink;
    long sent, late;
    double t0, measure_from, end;
    const char *value;
    pthread_barrier_t *ready, *go;
} fleet_thread_t;

static void *fleet_thread(void *arg) {
    fleet_thread_t *t = arg;
    const opts_t *o = t->o;
    int mine = 0;
    for (long i = t->tid; i < o->producers; i += t->nthreads) mine++;
    long *idx = calloc((size_t)mine, sizeof *idx);
    double *due = calloc((size_t)mine, sizeof *due);
    int k = 0;
    for (long i = t->tid; i < o->producers; i += t->nthreads, k++) {
        idx[k] = i;
        t->rks[i] = new_producer(o, &t->sink, (int)i);
        uint32_t payload32 = (uint32_t)k;
        rd_kafka_queue_t *q = rd_kafka_queue_get_main(t->rks[i]);
        rd_kafka_queue_io_event_enable(q, t->pipefd[1], &payload32, sizeof payload32);
        rd_kafka_queue_destroy(q);
    }
    /* Every producer knows its partitions (and has its producer id) before the clock starts. */
    for (k = 0; k < mine; k++) topic_partitions(t->rks[idx[k]], o->topic);
    pthread_barrier_wait(t->ready);
    pthread_barrier_wait(t->go); /* main has set t0, measure_from and end */
    double period = 1.0 / o->rate;
    for (k = 0; k < mine; k++)  /* spread the producers evenly over one period */
        due[k] = t->t0 + period * (double)idx[k] / (double)o->producers;
    double last_sweep = 0;
    for (;;) {
        double now = now_s();
        if (now >= t->end) break;
        double next = t->end;
        void *mark = now >= t->measure_from ? MEASURED : NULL;
        for (k = 0; k < mine; k++) {
            /* Open loop: a record due while the generator was descheduled is
             * still sent (late sends are counted, so a client-bound run shows). */
            while (due[k] <= now) {
                if (now - due[k] > 0.001) t->late++;
                rd_kafka_resp_err_t e = rd_kafka_producev(
                    t->rks[idx[k]], RD_KAFKA_V_TOPIC(o->topic),
                    RD_KAFKA_V_VALUE((void *)t->value, (size_t)o->size), RD_KAFKA_V_OPAQUE(mark),
                    RD_KAFKA_V_END);
                if (e) note_error(rd_kafka_err2str(e));
                else t->sent++;
                due[k] += period;
            }
            if (due[k] < next) next = due[k];
        }
        if (now - last_sweep > 0.01) {  /* in case a wake-up was lost to a full pipe */
            for (k = 0; k < mine; k++) rd_kafka_poll(t->rks[idx[k]], 0);
            last_sweep = now;
        }
        double wait = next - now_s();
        struct pollfd pfd = {t->pipefd[0], POLLIN, 0};
        int ms = wait > 0 ? (int)ceil(wait * 1000) : 0;
        if (ms > 10) ms = 10;
        if (poll(&pfd, 1, ms) > 0) {
            uint32_t buf[1024];
            ssize_t r = read(t->pipefd[0], buf, sizeof buf);
            for (ssize_t j = 0; j < r / (ssize_t)sizeof(uint32_t); j++)
                if (buf[j] < (uint32_t)mine) rd_kafka_poll(t->rks[idx[buf[j]]], 0);
        }
    }
    for (k = 0; k < mine; k++) rd_kafka_flush(t->rks[idx[k]], 30000);
    free(idx);
    free(due);
    return NULL;
}

static int fleet_mode(const opts_t *o) {
    raise_nofile();
    int nthreads = (int)(o->threads < o->producers ? o->threads : o->producers);
    fleet_thread_t *ts = calloc((size_t)nthreads, sizeof *ts);
    rd_kafka_t **rks = calloc((size_t)o->producers, sizeof *rks);
    pthread_t *th = calloc((size_t)nthreads, sizeof *th);
    pthread_barrier_t ready, go;
    pthread_barrier_init(&ready, NULL, (unsigned)nthreads + 1);
    pthread_barrier_init(&go, NULL, (unsigned)nthreads + 1);
    char *value = payload(o->size, 2);
    double setup0 = now_s();
    for (int i = 0; i < nthreads; i++) {
        ts[i] = (fleet_thread_t){.o = o, .tid = i, .nthreads = nthreads, .rks = rks,
                                 .value = value, .ready = &ready, .go = &go};
        if (pipe2(ts[i].pipefd, O_NONBLOCK | O_CLOEXEC)) {
            perror("rdkgen: pipe");
            return 1;
        }
        pthread_create(&th[i], NULL, fleet_thread, &ts[i]);
    }
    pthread_barrier_wait(&ready);  /* every producer created and has metadata */
    double setup_s = now_s() - setup0;
    double t0 = now_s();
    for (int i = 0; i < nthreads; i++) {
        ts[i].t0 = t0;
        ts[i].measure_from = t0 + o->warmup_s;
        ts[i].end = t0 + o->warmup_s + o->duration;
    }
    pthread_barrier_wait(&go);
    /* Tell the harness the measured window starts (it samples the broker's CPU). */
    sleep_s(o->warmup_s);
    double m0 = now_s(), c0 = cpu_s();
    printf("{\"phase\": \"measure\"}\n");
    fflush(stdout);
    for (int i = 0; i < nthreads; i++) pthread_join(th[i], NULL);
    double wall = now_s() - m0, cpu = cpu_s() - c0;
    hist_t *all = calloc(1, sizeof *all);
    long sent = 0, acked = 0, late = 0, measured = 0;
    for (int i = 0; i < nthreads; i++) {
        hist_merge(all, &ts[i].sink.hist);
        measured += atomic_load(&ts[i].sink.measured);
        sent += ts[i].sent;
        late += ts[i].late;
        acked += atomic_load(&ts[i].sink.acked);
    }
    printf("{\"mode\": \"fleet\", \"producers\": %ld, \"rate_each\": %.1f, \"sent\": %ld, "
           "\"records\": %ld, \"records_per_s\": %.1f, \"late_sends\": %ld, \"setup_s\": %.3f, "
           "\"wall_s\": %.3f, \"client_cpu_cores\": %.3f, ",
           o->producers, o->rate, sent, acked, (double)measured / wall, late, setup_s, wall,
           cpu / wall);
    hist_json(all);
    printf(", ");
    errors_json();
    printf("}\n");
    fflush(stdout);
    /* Destroying a thousand producers one by one takes seconds and measures nothing. */
    (void)rks;
    _exit(0);
}

/* -- consume ---------------------------------------------------------------- */

/* Assign-based (no group): every partition from offset 0, as loadgen.py's consume. */
static int consume_mode(const opts_t *o) {
    rd_kafka_conf_t *conf = base_conf(o);
    conf_set(conf, "group.id", "rdkgen-assign"); /* required by the client; never joined */
    conf_set(conf, "enable.auto.commit", "false");
    conf_set(conf, "enable.auto.offset.store", "false");
    conf_set(conf, "fetch.max.bytes", "52428800");
    conf_set(conf, "max.partition.fetch.bytes", "1048576");
    conf_set(conf, "queued.max.messages.kbytes", "262144");
    char err[256];
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof err);
    if (!rk) {
        fprintf(stderr, "rdkgen: rd_kafka_new: %s\n", err);
        return 1;
    }
    int parts = topic_partitions(rk, o->topic);
    rd_kafka_topic_partition_list_t *tl = rd_kafka_topic_partition_list_new(parts);
    for (int p = 0; p < parts; p++)
        rd_kafka_topic_partition_list_add(tl, o->topic, p)->offset = 0;
    double t0 = now_s(), c0 = cpu_s();
    rd_kafka_assign(rk, tl);
    rd_kafka_topic_partition_list_destroy(tl);
    long got = 0;
    long long nbytes = 0;
    double idle_deadline = now_s() + o->timeout;
    while (got < o->records) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 500);
        if (!m) {
            if (now_s() > idle_deadline) break;
            continue;
        }
        idle_deadline = now_s() + o->timeout;
        if (m->err) {
            if (m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF) note_error(rd_kafka_message_errstr(m));
        } else {
            got++;
            nbytes += (long long)m->len;
        }
        rd_kafka_message_destroy(m);
    }
    double wall = now_s() - t0, cpu = cpu_s() - c0;
    printf("{\"mode\": \"consume\", \"records\": %ld, \"bytes\": %lld, \"records_per_s\": %.1f, "
           "\"mib_per_s\": %.3f, \"wall_s\": %.3f, \"client_cpu_cores\": %.3f, ",
           got, nbytes, (double)got / wall, (double)nbytes / wall / 1048576.0, wall, cpu / wall);
    errors_json();
    printf("}\n");
    fflush(stdout);
    rd_kafka_consumer_close(rk);
    rd_kafka_destroy(rk);
    return 0;
}

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

static int idle_mode(const opts_t *o) {
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

/* -- consumer group -------------------------------------------------------- */

/* M members in one group over a P-partition topic, one thread each. The
 * rebalance is timed from the moment every member subscribes until every
 * partition is assigned and every member holds some (P >= M); then a producer
 * in this process stamps records with the monotonic clock and the members
 * measure receipt minus stamp, pooled over all members. Then one member
 * leaves and the time until the others hold every partition again is timed. */
typedef struct {
    const opts_t *o;
    int id;
    rd_kafka_t *rk;
    hist_t hist;
    long received;
    atomic_int assigned;
    atomic_int stop;
    int64_t measure_from_ns;
    pthread_barrier_t *go;
} member_t;

static atomic_long total_assigned;
static atomic_long probes_received; /* records stamped 0: one per partition, before the load */

static void rebalance_cb(rd_kafka_t *rk, rd_kafka_resp_err_t err,
                         rd_kafka_topic_partition_list_t *parts, void *opaque) {
    member_t *m = opaque;
    if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
        rd_kafka_assign(rk, parts);
        atomic_fetch_add(&total_assigned, parts->cnt - atomic_load(&m->assigned));
        atomic_store(&m->assigned, parts->cnt);
    } else {
        rd_kafka_assign(rk, NULL);
        atomic_fetch_sub(&total_assigned, atomic_load(&m->assigned));
        atomic_store(&m->assigned, 0);
    }
}

static void *member_thread(void *arg) {
    member_t *m = arg;
    const opts_t *o = m->o;
    rd_kafka_conf_t *conf = base_conf(o);
    conf_set(conf, "group.id", o->group);
    conf_set(conf, "auto.offset.reset", "earliest");
    conf_set(conf, "enable.auto.commit", "true");
    conf_set(conf, "socket.nagle.disable", "true");
    conf_set(conf, "fetch.wait.max.ms", "100");
    rd_kafka_conf_set_rebalance_cb(conf, rebalance_cb);
    rd_kafka_conf_set_opaque(conf, m);
    char err[256];
    m->rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof err);
    if (!m->rk) {
        fprintf(stderr, "rdkgen: rd_kafka_new: %s\n", err);
        exit(1);
    }
    rd_kafka_poll_set_consumer(m->rk);
    rd_kafka_topic_partition_list_t *tl = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(tl, o->topic, RD_KAFKA_PARTITION_UA);
    pthread_barrier_wait(m->go);
    rd_kafka_subscribe(m->rk, tl);
    rd_kafka_topic_partition_list_destroy(tl);
    while (!atomic_load(&m->stop)) {
        rd_kafka_message_t *msg = rd_kafka_consumer_poll(m->rk, 100);
        if (!msg) continue;
        int64_t now = mono_ns();
        if (msg->err) {
            if (msg->err != RD_KAFKA_RESP_ERR__PARTITION_EOF)
                note_error(rd_kafka_message_errstr(msg));
        } else if (msg->len >= 8) {
            int64_t sent;
            memcpy(&sent, msg->payload, 8);
            if (sent == 0) atomic_fetch_add(&probes_received, 1);
            else m->received++;
            if (sent > 0 && sent >= m->measure_from_ns) hist_add(&m->hist, (now - sent) / 1000);
        }
        rd_kafka_message_destroy(msg);
    }
    rd_kafka_consumer_close(m->rk);
    return NULL;
}

static int all_members_assigned(member_t *ms, long from, long n, long parts) {
    if (atomic_load(&total_assigned) != parts) return 0;
    for (long i = from; i < n; i++)
        if (atomic_load(&ms[i].assigned) == 0) return 0;
    return 1;
}

static double wait_assigned(member_t *ms, long from, long n, long parts, double timeout) {
    double t0 = now_s();
    while (!all_members_assigned(ms, from, n, parts)) {
        if (now_s() - t0 > timeout) return -1;
        sleep_s(0.002);
    }
    return now_s() - t0;
}

static int group_mode(const opts_t *o) {
    raise_nofile();
    /* Partition count from a short-lived producer, which also sends the load. */
    sink_t *sink = calloc(1, sizeof *sink);
    opts_t po = *o;
    po.acks = "1";
    po.linger_ms = 1;
    po.idempotent = 0;
    rd_kafka_t *prod = new_producer(&po, sink, 0);
    long parts = topic_partitions(prod, o->topic);
    if (parts < o->members) usage_exit("the topic needs at least --members partitions");
    member_t *ms = calloc((size_t)o->members, sizeof *ms);
    pthread_t *th = calloc((size_t)o->members, sizeof *th);
    pthread_barrier_t go;
    pthread_barrier_init(&go, NULL, (unsigned)o->members + 1);
    for (long i = 0; i < o->members; i++) {
        ms[i].o = o;
        ms[i].id = (int)i;
        ms[i].go = &go;
        ms[i].measure_from_ns = INT64_MAX;
        pthread_create(&th[i], NULL, member_thread, &ms[i]);
    }
    pthread_barrier_wait(&go);
    double ready0 = now_s();
    double rebalance_s = wait_assigned(ms, 0, o->members, parts, 120);
    if (rebalance_s < 0) {
        printf("{\"mode\": \"group\", \"errors\": 1, \"first_errors\": [\"%ld members held "
               "%ld of %ld partitions after 120 s\"]}\n",
               o->members, atomic_load(&total_assigned), parts);
        fflush(stdout);
        _exit(0);
    }
    /* One probe record to every partition: the group is ready when its members
     * have consumed all of them (each member found its partitions' leaders and
     * fetch positions), so the timed load measures consumption, not start-up. */
    char *value = payload(o->size, 3);
    memset(value, 0, 8);
    for (long p = 0; p < parts; p++)
        if (rd_kafka_producev(prod, RD_KAFKA_V_TOPIC(o->topic), RD_KAFKA_V_PARTITION((int32_t)p),
                              RD_KAFKA_V_VALUE(value, (size_t)o->size),
                              RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END))
            note_error("probe record not queued");
    rd_kafka_flush(prod, 60000);
    while (atomic_load(&probes_received) < parts && now_s() - (ready0 + rebalance_s) < 120)
        sleep_s(0.002);
    double ready_s = now_s() - ready0;
    if (atomic_load(&probes_received) < parts) {
        char buf[120];
        snprintf(buf, sizeof buf, "the group consumed %ld of %ld probe records in 120 s",
                 atomic_load(&probes_received), parts);
        note_error(buf);
    }
    /* Load: paced records, unkeyed (spread over all partitions by librdkafka). */
    int64_t measure_from = mono_ns() + (int64_t)(o->warmup_s * 1e9);
    for (long i = 0; i < o->members; i++) ms[i].measure_from_ns = measure_from;
    double t0 = now_s(), c0 = cpu_s();
    double end = t0 + o->warmup_s + o->duration;
    long sent = 0;
    while (now_s() < end) {
        long due = (long)((now_s() - t0) * o->rate) - sent;
        if (due <= 0) {
            rd_kafka_poll(prod, 0);
            sleep_s(0.0002);
            continue;
        }
        for (long i = 0; i < due && i < 1000; i++) {
            int64_t stamp = mono_ns();
            memcpy(value, &stamp, 8);
            /* The producer's ack latency too: it tells a slow produce path from a slow group. */
            if (rd_kafka_producev(prod, RD_KAFKA_V_TOPIC(o->topic),
                                  RD_KAFKA_V_VALUE(value, (size_t)o->size),
                                  RD_KAFKA_V_OPAQUE((stamp >= measure_from ? MEASURED : NULL)),
                                  RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END))
                break;
            sent++;
        }
        rd_kafka_poll(prod, 0);
    }
    rd_kafka_flush(prod, 30000);
    /* Wait (bounded) until the members have everything that was acknowledged. */
    double drain_end = now_s() + 30;
    for (;;) {
        long got = 0;
        for (long i = 0; i < o->members; i++) got += ms[i].received;
        if (got >= atomic_load(&sink->acked) - parts || now_s() > drain_end) break;
        sleep_s(0.01);
    }
    double wall = now_s() - t0, cpu = cpu_s() - c0;
    /* One member leaves: the others take over its partitions. */
    atomic_store(&ms[0].stop, 1);
    double leave0 = now_s();
    pthread_join(th[0], NULL);
    double leave_s = wait_assigned(ms, 1, o->members, parts, 120);
    if (leave_s >= 0) leave_s = now_s() - leave0;
    hist_t *all = calloc(1, sizeof *all);
    long received = 0;
    for (long i = 0; i < o->members; i++) {
        hist_merge(all, &ms[i].hist);
        received += ms[i].received;
    }
    printf("{\"mode\": \"group\", \"members\": %ld, \"partitions\": %ld, \"rebalance_s\": %.3f, "
           "\"ready_s\": %.3f, \"leave_rebalance_s\": %.3f, \"sent\": %ld, \"acked\": %ld, "
           "\"received\": %ld, \"wall_s\": %.3f, \"client_cpu_cores\": %.3f, ",
           o->members, parts, rebalance_s, ready_s, leave_s, sent,
           atomic_load(&sink->acked) - parts, received, wall, cpu / wall);
    printf("\"produce_p50_ms\": %.3f, \"produce_p99_ms\": %.3f, ", hist_pct_ms(&sink->hist, 0.5),
           hist_pct_ms(&sink->hist, 0.99));
    hist_json(all);
    printf(", ");
    errors_json();
    printf("}\n");
    fflush(stdout);
    for (long i = 1; i < o->members; i++) atomic_store(&ms[i].stop, 1);
    for (long i = 1; i < o->members; i++) pthread_join(th[i], NULL);
    _exit(0);
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
    return group_mode(&o);
}
