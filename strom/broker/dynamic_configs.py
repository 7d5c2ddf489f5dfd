"""Dynamic broker configs follow the metadata image, on every broker.

AlterConfigs and IncrementalAlterConfigs on a BROKER resource commit
BrokerConfigRecords (through the controller); every broker applies them
when its image does, as Kafka's brokers apply ConfigRecords from the
metadata log (DynamicConfigPublisher): the cluster-wide default (resource
"") on all of them, a per-broker config (resource named by a node id) on that
broker only, over the default. Topics without their own override follow at
once (ReplicaManager.refresh_configs), down to their logs.
"""

from __future__ import annotations

from strom.broker.replica_manager import ReplicaManager
from strom.cluster.image import MetadataImage
from strom.cluster.store import MetadataStore
from strom.config import BrokerConfig


def apply_dynamic_configs(config: BrokerConfig, image: MetadataImage, node_id: int) -> bool:
    """Make `config`'s dynamic layers the image's; True if they changed."""
    cluster = dict(image.broker_configs)
    own = dict(image.node_configs.get(node_id, {}))
    if config.dynamic == cluster and config.dynamic_broker == own:
        return False
    config.dynamic.clear()
    config.dynamic.update(cluster)
    config.dynamic_broker.clear()
    config.dynamic_broker.update(own)
    return True


def follow_dynamic_configs(store: MetadataStore, config: BrokerConfig,
                           replicas: ReplicaManager) -> None:
    """Apply every later image's dynamic configs (after the replica manager's
    own listener, so new partitions are refreshed too)."""
    node_id = store.node_id

    def on_image(old: MetadataImage, new: MetadataImage) -> None:
        if (new.broker_configs == old.broker_configs
                and new.node_configs.get(node_id) == old.node_configs.get(node_id)):
            return
        if apply_dynamic_configs(config, new, node_id):
            replicas.refresh_configs(new)

    store.subscribe(on_image)
