"""Stand-in for ``hailo_sdk_client.exposed_definitions`` (the enums sdk.py imports from it)."""
import enum


class JoinAction(enum.Enum):
    NONE = "none"
    AUTO_JOIN_INPUTS = "auto_join_inputs"
    AUTO_CHAIN_NETWORKS = "auto_chain_networks"
    CUSTOM = "custom"
