/* rdkgen e2e: a paced producer stamps each record with the monotonic clock; a
 * consumer thread in the same process, assigned at the end of every partition
 * before the first record, measures receipt minus stamp (bench/loadgen.py's
 * e2e-producer and e2e-consumer in one process, without Python). */
#include "rdkgen.h"

typedef struct {
    rd_kafka_t *rk;
    hist_t hist;
    atomic_long received;
    atomic_int stop;
    int64_t from_ns, measure_from_ns;
} e2e_consumer_t;

static void *e2e_consume(void *arg) {
    e2e_consumer_t *c = arg;
    while (!atomic_load(&c->stop)) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(c->rk, 100);
        if (!m) continue;
        int64_t now = mono_ns();
        if (m->err) {
            if (m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF) note_error(rd_kafka_message_errstr(m));
        } else if (m->len >= 8) {
            int64_t sent;
            memcpy(&sent, m->payload, 8);
            if (sent >= c->from_ns && sent <= now) {  /* this run's records only */
                atomic_fetch_add(&c->received, 1);
                if (sent >= c->measure_from_ns) hist_add(&c->hist, (now - sent) / 1000);
            }
        }
        rd_kafka_message_destroy(m);
    }
    return NULL;
}

int e2e_mode(const opts_t *o) {
    rd_kafka_conf_t *conf = base_conf(o);
    conf_set(conf, "group.id", "rdkgen-e2e"); /* required by the client; never joined */
    conf_set(conf, "enable.auto.commit", "false");
    conf_set(conf, "socket.nagle.disable", "true");
    conf_set(conf, "fetch.wait.max.ms", "500");
    char err[256];
    e2e_consumer_t *c = calloc(1, sizeof *c);
    c->rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof err);
    if (!c->rk) {
        fprintf(stderr, "rdkgen: rd_kafka_new: %s\n", err);
        return 1;
    }
    int parts = topic_partitions(c->rk, o->topic);
    rd_kafka_topic_partition_list_t *tl = rd_kafka_topic_partition_list_new(parts);
    for (int p = 0; p < parts; p++) {
        int64_t lo = 0, hi = 0;
        double deadline = now_s() + 60;  /* a new topic's leader may not answer at once */
        while (rd_kafka_query_watermark_offsets(c->rk, o->topic, p, &lo, &hi, 10000) &&
               now_s() < deadline)
            sleep_s(0.2);
        rd_kafka_topic_partition_list_add(tl, o->topic, p)->offset = hi;
    }
    rd_kafka_assign(c->rk, tl);
    rd_kafka_topic_partition_list_destroy(tl);
    sink_t *sink = calloc(1, sizeof *sink);
    opts_t po = *o;
    po.idempotent = 0;
    rd_kafka_t *prod = new_producer(&po, sink, 0);
    topic_partitions(prod, o->topic);
    c->from_ns = mono_ns();
    c->measure_from_ns = c->from_ns + (int64_t)(o->warmup_s * 1e9);
    pthread_t th;
    pthread_create(&th, NULL, e2e_consume, c);
    char *value = payload(o->size, 4);
    double t0 = now_s(), c0 = cpu_s();
    long sent = 0;
    while (now_s() < t0 + o->duration) {
        long due = (long)((now_s() - t0) * o->rate) - sent;
        if (due <= 0) {
            rd_kafka_poll(prod, 0);
            sleep_s(0.0002);
            continue;
        }
        for (long i = 0; i < due && i < 1000; i++) {
            int64_t stamp = mono_ns();
            memcpy(value, &stamp, 8);
            rd_kafka_resp_err_t e = rd_kafka_producev(
                prod, RD_KAFKA_V_TOPIC(o->topic), RD_KAFKA_V_VALUE(value, (size_t)o->size),
                RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END);
            if (e) {
                if (e != RD_KAFKA_RESP_ERR__QUEUE_FULL) note_error(rd_kafka_err2str(e));
                rd_kafka_poll(prod, 1);
                break;
            }
            sent++;
        }
        rd_kafka_poll(prod, 0);
    }
    rd_kafka_flush(prod, 60000);
    double wall = now_s() - t0;
    long acked = atomic_load(&sink->acked);
    double drain_end = now_s() + 60;
    while (atomic_load(&c->received) < acked && now_s() < drain_end) sleep_s(0.01);
    double cpu = cpu_s() - c0;
    atomic_store(&c->stop, 1);
    pthread_join(th, NULL);
    printf("{\"mode\": \"e2e\", \"sent\": %ld, \"records\": %ld, \"received\": %ld, "
           "\"mib_per_s\": %.3f, \"wall_s\": %.3f, \"client_cpu_cores\": %.3f, ",
           sent, acked, atomic_load(&c->received),
           (double)acked * (double)o->size / wall / 1048576.0, wall, cpu / (now_s() - t0));
    hist_json(&c->hist);
    printf(", ");
    errors_json();
    printf("}\n");
    fflush(stdout);
    _exit(0);
}
