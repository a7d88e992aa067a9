"""The project's own single-node Apache Kafka (KRaft) for development, tests, CI and the demo.

Jars come from Maven Central through `pom.xml` beside this file and are cached per Kafka
version; the broker keeps its port, data and logs in one home folder so that `start` after
`stop` brings back the same broker with the same data.
"""

from localkafka.broker import BrokerInfo, LocalKafkaError, start, status, stop

__all__ = ["BrokerInfo", "LocalKafkaError", "start", "status", "stop"]
