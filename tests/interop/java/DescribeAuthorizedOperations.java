// Prints the KIP-430 authorized operations Kafka's AdminClient reports:
// one line "cluster OP,OP,..." and one "topic <name> OP,OP,..." per topic
// (operations sorted by name; "none" when the set is empty, "null" when absent).
import java.util.*;
import java.util.stream.*;
import org.apache.kafka.clients.admin.*;
import org.apache.kafka.common.acl.AclOperation;

public class DescribeAuthorizedOperations {
    static String ops(Set<AclOperation> ops) {
        if (ops == null) return "null";
        if (ops.isEmpty()) return "none";
        return ops.stream().map(Enum::name).sorted().collect(Collectors.joining(","));
    }

    public static void main(String[] args) throws Exception {
        Properties props = new Properties();
        props.put(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, args[0]);
        try (Admin admin = Admin.create(props)) {
            DescribeClusterResult cluster = admin.describeCluster(
                new DescribeClusterOptions().includeAuthorizedOperations(true));
            System.out.println("cluster " + ops(cluster.authorizedOperations().get()));
            List<String> names = Arrays.asList(args).subList(1, args.length);
            Map<String, TopicDescription> topics = admin.describeTopics(names,
                new DescribeTopicsOptions().includeAuthorizedOperations(true))
                .allTopicNames().get();
            for (String name : names) {
                System.out.println("topic " + name + " " + ops(topics.get(name).authorizedOperations()));
            }
        }
    }
}
