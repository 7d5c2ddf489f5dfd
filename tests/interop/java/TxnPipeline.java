// Consume-transform-produce with the Java client's transactions (Kafka 4.4:
// transaction version 2 when the broker finalizes it). One transaction is
// aborted on purpose after sending its output and offsets; the consumer then
// rewinds to the committed offsets and the work is redone. Prints "done".
import java.time.Duration;
import java.util.*;
import org.apache.kafka.clients.consumer.*;
import org.apache.kafka.clients.producer.*;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.serialization.*;

public class TxnPipeline {
    public static void main(String[] args) throws Exception {
        String bootstrap = args[0], source = args[1], sink = args[2], group = args[3], tid = args[4];
        int count = Integer.parseInt(args[5]);
        Properties c = new Properties();
        c.put("bootstrap.servers", bootstrap);
        c.put("group.id", group);
        c.put("enable.auto.commit", "false");
        c.put("auto.offset.reset", "earliest");
        c.put("isolation.level", "read_committed");
        Properties p = new Properties();
        p.put("bootstrap.servers", bootstrap);
        p.put("transactional.id", tid);
        try (KafkaConsumer<String, String> consumer =
                 new KafkaConsumer<>(c, new StringDeserializer(), new StringDeserializer());
             KafkaProducer<String, String> producer =
                 new KafkaProducer<>(p, new StringSerializer(), new StringSerializer())) {
            TopicPartition tp = new TopicPartition(source, 0);
            consumer.assign(List.of(tp));
            producer.initTransactions();
            int done = 0;
            boolean aborted = false;
            long deadline = System.currentTimeMillis() + 60000;
            while (done < count && System.currentTimeMillis() < deadline) {
                ConsumerRecords<String, String> records = consumer.poll(Duration.ofMillis(500));
                if (records.isEmpty()) continue;
                producer.beginTransaction();
                long next = -1;
                int n = 0;
                for (ConsumerRecord<String, String> r : records) {
                    producer.send(new ProducerRecord<>(sink, 0, null, r.value().toUpperCase()));
                    next = r.offset() + 1;
                    n++;
                    if (n == 3) break;
                }
                producer.sendOffsetsToTransaction(
                    Map.of(tp, new OffsetAndMetadata(next)), consumer.groupMetadata());
                if (!aborted) {
                    aborted = true;
                    // Flushed first: an abort drops batches still in the accumulator,
                    // and the test reads the aborted records back (read_uncommitted).
                    producer.flush();
                    producer.abortTransaction();
                    OffsetAndMetadata committed = consumer.committed(Set.of(tp)).get(tp);
                    consumer.seek(tp, committed == null ? 0 : committed.offset());
                    continue;
                }
                producer.commitTransaction();
                consumer.seek(tp, next);
                done = (int) next;
            }
        }
        System.out.println("done");
    }
}
