/* rdkgen produce and fleet: paced or unthrottled producers, ack latency. */
#include "rdkgen.h"

#include <fcntl.h>
#include <poll.h>

/* -- producers (produce and fleet) ---------------------------------------- */


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

rd_kafka_t *new_producer(const opts_t *o, sink_t *sink, int index) {
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

int produce_mode(const opts_t *o) {
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

int fleet_mode(const opts_t *o) {
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

