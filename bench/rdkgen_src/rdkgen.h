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
 *                  [--duration 10] [--warmup-s 2] [--group G] [--debug CONTEXTS]
 *                  [--first-join [--leave [--leave-after S]]]
 *   rdkgen e2e     --bootstrap B --topic T --rate R --duration S [--size 1024] [--acks 1]
 *                  [--linger-ms 5] [--warmup-s 0]
 *
 * group --first-join stops after the first assignment: it prints the time from
 * subscribe until every partition is assigned and every member holds some,
 * and exits without closing the members (a first join per fresh group). With
 * --leave, S seconds after that (0 unless given) member 0 closes and the time
 * from its rd_kafka_consumer_close until the others hold every partition is
 * printed too (leave_rebalance_s), as the full group run times its one leave.
 * --debug sets the members' librdkafka `debug` (e.g. cgrp,protocol; its log
 * goes to stderr), to time a rebalance's steps.
 *
 * Latencies go into one log-bucketed histogram (1% buckets, microseconds)
 * pooled over every producer or member; percentiles come from the pooled
 * counts, never from averaging per-producer percentiles. The buckets are in
 * the output ("hist": [[index, count], ...]) so runs in several processes can
 * be merged (bench/rdkgen.py).
 *
 * common.c: histogram, options, helpers, main(); produce.c: produce and fleet;
 * consume.c: consume and group; idle.c: idle; e2e.c: e2e.
 */
#ifndef RDKGEN_H
#define RDKGEN_H
#define _GNU_SOURCE
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include <librdkafka/rdkafka.h>

#define HIST_BUCKETS 2048 /* 1.01^2047 us is far beyond any timeout */
#define HIST_BASE 1.01

typedef struct {
    uint64_t counts[HIST_BUCKETS];
    uint64_t n;
    int64_t max_us;
    double sum_us;
} hist_t;

typedef struct {
    const char *mode, *bootstrap, *topic, *acks, *group, *debug;
    long records, keys, connections, producers, members, threads, batch_bytes, size;
    double rate, duration, warmup_s, timeout, leave_after;
    int linger_ms, idempotent, latency, first_join, leave;
} opts_t;

/* What every delivery report of one thread's producers lands in. */
typedef struct {
    hist_t hist;
    atomic_long acked, measured;
} sink_t;

#define MEASURED ((void *)1) /* msg_opaque of a record sent after the warm-up */

extern long err_count;

void hist_add(hist_t *h, int64_t us);
void hist_merge(hist_t *into, const hist_t *from);
double hist_pct_ms(const hist_t *h, double q);
void hist_json(const hist_t *h);
void usage_exit(const char *msg);
double now_s(void);
int64_t mono_ns(void);
double cpu_s(void);
void sleep_s(double s);
void raise_nofile(void);
void note_error(const char *what);
void errors_json(void);
rd_kafka_conf_t *base_conf(const opts_t *o);
void conf_set(rd_kafka_conf_t *conf, const char *k, const char *v);
void conf_setl(rd_kafka_conf_t *conf, const char *k, long v);
int topic_partitions(rd_kafka_t *rk, const char *topic);
char *payload(long size, int seed);
rd_kafka_t *new_producer(const opts_t *o, sink_t *sink, int index);
int produce_mode(const opts_t *o);
int fleet_mode(const opts_t *o);
int consume_mode(const opts_t *o);
int idle_mode(const opts_t *o);
int group_mode(const opts_t *o);
int e2e_mode(const opts_t *o);
opts_t parse_args(int argc, char **argv);

#endif
