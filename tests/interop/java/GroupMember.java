// A member of a consumer group for the migration test (test_groups_migration.py):
// args: bootstrap topic group group.protocol (classic|consumer).
// Prints "R <partition> <offset> <value>" per record, after which its offset is
// committed before the next poll and before any partition is given up, so a
// record is printed by exactly one member. Prints "A <partitions>" on each
// assignment change. Closing stdin makes it leave the group and exit.
import java.time.Duration;
import java.util.Collection;
import java.util.List;
import java.util.Properties;
import java.util.concurrent.atomic.AtomicBoolean;

import org.apache.kafka.clients.consumer.ConsumerRebalanceListener;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.ConsumerRecords;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.errors.WakeupException;
import org.apache.kafka.common.serialization.StringDeserializer;

public class GroupMember {
    public static void main(String[] args) throws Exception {
        Properties props = new Properties();
        props.put("bootstrap.servers", args[0]);
        props.put("group.id", args[2]);
        props.put("group.protocol", args[3]);
        props.put("enable.auto.commit", "false");
        props.put("auto.offset.reset", "earliest");
        props.put("key.deserializer", StringDeserializer.class.getName());
        props.put("value.deserializer", StringDeserializer.class.getName());
        if (args[3].equals("classic")) {
            props.put("session.timeout.ms", "6000");
            props.put("heartbeat.interval.ms", "500");
        }
        KafkaConsumer<String, String> consumer = new KafkaConsumer<>(props);
        AtomicBoolean stopping = new AtomicBoolean(false);
        Thread stdin = new Thread(() -> {
            try {
                while (System.in.read() >= 0) { }
            } catch (Exception e) { }
            stopping.set(true);
            consumer.wakeup();
        });
        stdin.setDaemon(true);
        stdin.start();
        consumer.subscribe(List.of(args[1]), new ConsumerRebalanceListener() {
            public void onPartitionsRevoked(Collection<TopicPartition> partitions) {
                consumer.commitSync();
                long left = consumer.assignment().stream()
                    .filter(tp -> !partitions.contains(tp)).count();
                System.out.println("A " + left);
                System.out.flush();
            }

            public void onPartitionsAssigned(Collection<TopicPartition> partitions) {
                System.out.println("A " + consumer.assignment().size());
                System.out.flush();
            }
        });
        try {
            while (!stopping.get()) {
                ConsumerRecords<String, String> records = consumer.poll(Duration.ofMillis(200));
                for (ConsumerRecord<String, String> r : records) {
                    System.out.println("R " + r.partition() + " " + r.offset() + " " + r.value());
                }
                System.out.flush();
                if (!records.isEmpty()) {
                    consumer.commitSync();
                }
            }
        } catch (WakeupException e) {
            // stdin closed: leave the group
        } finally {
            try {
                consumer.commitSync();  // a wakeup may have cut the last commit short
            } catch (Exception e) {
                System.out.println("E " + e);
            }
            consumer.close(Duration.ofSeconds(10));
            System.out.println("closed");
            System.out.flush();
        }
    }
}
