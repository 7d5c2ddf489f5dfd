// A member of a share group (KIP-932) for test_share_groups_java.py.
// args: bootstrap topic group mode
//   mode "accept": acknowledges every record it receives (explicit mode, ACCEPT,
//                  commitSync) and keeps polling until stdin closes;
//   mode "hold":   prints what its first non-empty poll delivered and then never
//                  acknowledges (the test kills it with SIGKILL).
// Prints "R <partition> <offset> <value> <delivery count>" per record.
import java.time.Duration;
import java.util.List;
import java.util.Properties;
import java.util.concurrent.atomic.AtomicBoolean;

import org.apache.kafka.clients.consumer.AcknowledgeType;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.ConsumerRecords;
import org.apache.kafka.clients.consumer.KafkaShareConsumer;
import org.apache.kafka.common.errors.WakeupException;
import org.apache.kafka.common.serialization.StringDeserializer;

public class ShareMember {
    public static void main(String[] args) throws Exception {
        Properties props = new Properties();
        props.put("bootstrap.servers", args[0]);
        props.put("group.id", args[2]);
        props.put("share.acknowledgement.mode", "explicit");
        props.put("key.deserializer", StringDeserializer.class.getName());
        props.put("value.deserializer", StringDeserializer.class.getName());
        boolean hold = args[3].equals("hold");
        KafkaShareConsumer<String, String> consumer = new KafkaShareConsumer<>(props);
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
        consumer.subscribe(List.of(args[1]));
        System.out.println("S");
        System.out.flush();
        try {
            while (!stopping.get()) {
                ConsumerRecords<String, String> records = consumer.poll(Duration.ofMillis(200));
                for (ConsumerRecord<String, String> r : records) {
                    System.out.println("R " + r.partition() + " " + r.offset() + " " + r.value()
                        + " " + r.deliveryCount().orElse((short) -1));
                    if (!hold) {
                        consumer.acknowledge(r, AcknowledgeType.ACCEPT);
                    }
                }
                System.out.flush();
                if (hold && !records.isEmpty()) {
                    System.out.println("H");
                    System.out.flush();
                    Thread.sleep(Long.MAX_VALUE);
                }
                if (!records.isEmpty()) {
                    consumer.commitSync();
                }
            }
        } catch (WakeupException e) {
            // stdin closed
        }
        consumer.close();
        System.out.println("C");
        System.out.flush();
    }
}
