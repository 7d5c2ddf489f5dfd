"""The web console (`strom console`): topics, messages, consumer groups and live
throughput of any Kafka-compatible cluster, through a standard Kafka client."""
