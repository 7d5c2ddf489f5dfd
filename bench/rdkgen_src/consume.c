/* rdkgen consume (assign from offset 0) and group (a consumer group of M members). */
#include "rdkgen.h"

/* -- consume ---------------------------------------------------------------- */

/* Assign-based (no group): every partition from offset 0, as loadgen.py's consume. */
int consume_mode(const opts_t *o) {
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
static _Atomic int64_t load_from_ns = INT64_MAX;

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
    if (o->debug) {
        conf_set(conf, "debug", o->debug);
        conf_set(conf, "log_level", "7");
    }
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
            /* Records of this run only: a stamp from the load's start until now. */
            if (sent == 0) atomic_fetch_add(&probes_received, 1);
            else if (sent >= atomic_load(&load_from_ns) && sent <= now) m->received++;
            else sent = -1;
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

/* Member 0 closes (its revoke, commit and LeaveGroup): seconds from then until
 * members 1..M-1 hold every partition (-1 after 120 s); *close_s is the time
 * its rd_kafka_consumer_close took. */
static double leave_one(member_t *ms, pthread_t *th, long parts, double *close_s) {
    long n = ms[0].o->members;
    atomic_store(&ms[0].stop, 1);
    double leave0 = now_s();
    pthread_join(th[0], NULL);
    *close_s = now_s() - leave0;
    double leave_s = wait_assigned(ms, 1, n, parts, 120);
    return leave_s < 0 ? -1 : now_s() - leave0;
}

int group_mode(const opts_t *o) {
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
    if (o->first_join) {
        /* The members are left to their session timeout: closing 50 of them
         * would rebalance this group 49 times while the next one is timed. */
        printf("{\"mode\": \"group\", \"members\": %ld, \"partitions\": %ld, "
               "\"rebalance_s\": %.3f", o->members, parts, rebalance_s);
        if (o->leave) {
            sleep_s(o->leave_after);
            double close_s, leave_s = leave_one(ms, th, parts, &close_s);
            printf(", \"leave_after_s\": %.3f, \"leave_rebalance_s\": %.3f, "
                   "\"leave_close_s\": %.3f", o->leave_after, leave_s, close_s);
        }
        printf("}\n");
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
    atomic_store(&load_from_ns, mono_ns());
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
    double close_s, leave_s = leave_one(ms, th, parts, &close_s);
    hist_t *all = calloc(1, sizeof *all);
    long received = 0;
    for (long i = 0; i < o->members; i++) {
        hist_merge(all, &ms[i].hist);
        received += ms[i].received;
    }
    printf("{\"mode\": \"group\", \"members\": %ld, \"partitions\": %ld, \"rebalance_s\": %.3f, "
           "\"ready_s\": %.3f, \"leave_rebalance_s\": %.3f, \"leave_close_s\": %.3f, "
           "\"sent\": %ld, \"acked\": %ld, "
           "\"received\": %ld, \"wall_s\": %.3f, \"client_cpu_cores\": %.3f, ",
           o->members, parts, rebalance_s, ready_s, leave_s, close_s, sent,
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

