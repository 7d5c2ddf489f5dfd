// A transactional producer driven line by line on stdin, for the transaction
// checker of test_transactions_checker_tv2.py (Kafka 4.4's client: transaction
// version 2 when the broker finalizes it).
//
// Arguments: bootstrap topic transactional.id client.id writer partitions
// records-per-partition. After initTransactions it prints "ready". Commands:
//   send N    begin transaction N and write records "writer:N:p:k" to every
//             partition p (k < records-per-partition), then flush;
//             prints "sent N"
//   more N    write records "writer:N:p:k" with k from records-per-partition
//             up in the open transaction (a zombie's late writes), then flush;
//             prints "sent N"
//   commit N  commitTransaction; prints "committed N" once it returned
//   abort N   abortTransaction; prints "aborted N"
// A command that throws prints "error N <exception>" and the producer is left
// as it is: the driver kills this process and starts a new one with the same
// transactional.id. End of input closes the producer and prints "closed".
import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.util.ArrayList;
import java.util.List;
import java.util.Properties;
import java.util.concurrent.Future;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.clients.producer.RecordMetadata;
import org.apache.kafka.common.serialization.StringSerializer;

public class TxnCheckerProducer {
    static void say(String line) {
        System.out.println(line);
        System.out.flush();
    }

    public static void main(String[] args) throws Exception {
        String bootstrap = args[0], topic = args[1], tid = args[2], clientId = args[3];
        int writer = Integer.parseInt(args[4]);
        int partitions = Integer.parseInt(args[5]);
        int perPartition = Integer.parseInt(args[6]);
        Properties p = new Properties();
        p.put("bootstrap.servers", bootstrap);
        p.put("transactional.id", tid);
        p.put("client.id", clientId);
        p.put("linger.ms", "2");
        // The broker is killed and restarted under the producer: reconnect and
        // retry quickly, and give up on a request well within the driver's deadline.
        p.put("reconnect.backoff.ms", "20");
        p.put("reconnect.backoff.max.ms", "200");
        p.put("retry.backoff.ms", "20");
        p.put("retry.backoff.max.ms", "200");
        p.put("request.timeout.ms", "5000");
        p.put("delivery.timeout.ms", "20000");
        p.put("max.block.ms", "20000");
        KafkaProducer<String, String> producer =
            new KafkaProducer<>(p, new StringSerializer(), new StringSerializer());
        try {
            producer.initTransactions();
        } catch (Exception e) {
            say("error init " + e);
            Runtime.getRuntime().halt(1);
        }
        say("ready");
        BufferedReader in = new BufferedReader(new InputStreamReader(System.in));
        String line;
        while ((line = in.readLine()) != null) {
            String[] cmd = line.trim().split(" ");
            if (cmd.length != 2) continue;
            int n = Integer.parseInt(cmd[1]);
            try {
                switch (cmd[0]) {
                    case "send":
                    case "more": {
                        if (cmd[0].equals("send")) producer.beginTransaction();
                        int first = cmd[0].equals("send") ? 0 : perPartition;
                        List<Future<RecordMetadata>> sent = new ArrayList<>();
                        for (int part = 0; part < partitions; part++) {
                            for (int k = first; k < first + perPartition; k++) {
                                String value = writer + ":" + n + ":" + part + ":" + k;
                                sent.add(producer.send(new ProducerRecord<>(topic, part, null, value)));
                            }
                        }
                        producer.flush();
                        for (Future<RecordMetadata> f : sent) f.get();
                        say("sent " + n);
                        break;
                    }
                    case "commit":
                        producer.commitTransaction();
                        say("committed " + n);
                        break;
                    case "abort":
                        producer.abortTransaction();
                        say("aborted " + n);
                        break;
                    default:
                        say("error " + n + " unknown command " + cmd[0]);
                }
            } catch (Exception e) {
                say("error " + n + " " + e.toString().replace('\n', ' '));
            }
        }
        producer.close();
        say("closed");
    }
}
