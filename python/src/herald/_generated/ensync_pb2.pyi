from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional

DESCRIPTOR: _descriptor.FileDescriptor

class ConnectRequest(_message.Message):
    __slots__ = ("access_key",)
    ACCESS_KEY_FIELD_NUMBER: _ClassVar[int]
    access_key: str
    def __init__(self, access_key: _Optional[str] = ...) -> None: ...

class ConnectResponse(_message.Message):
    __slots__ = ("success", "client_id", "client_hash", "server_config", "error_message")
    class ServerConfigEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    SUCCESS_FIELD_NUMBER: _ClassVar[int]
    CLIENT_ID_FIELD_NUMBER: _ClassVar[int]
    CLIENT_HASH_FIELD_NUMBER: _ClassVar[int]
    SERVER_CONFIG_FIELD_NUMBER: _ClassVar[int]
    ERROR_MESSAGE_FIELD_NUMBER: _ClassVar[int]
    success: bool
    client_id: str
    client_hash: str
    server_config: _containers.ScalarMap[str, str]
    error_message: str
    def __init__(self, success: bool = ..., client_id: _Optional[str] = ..., client_hash: _Optional[str] = ..., server_config: _Optional[_Mapping[str, str]] = ..., error_message: _Optional[str] = ...) -> None: ...

class HeartbeatRequest(_message.Message):
    __slots__ = ("client_id",)
    CLIENT_ID_FIELD_NUMBER: _ClassVar[int]
    client_id: str
    def __init__(self, client_id: _Optional[str] = ...) -> None: ...

class HeartbeatResponse(_message.Message):
    __slots__ = ("success",)
    SUCCESS_FIELD_NUMBER: _ClassVar[int]
    success: bool
    def __init__(self, success: bool = ...) -> None: ...

class PublishMessageRequest(_message.Message):
    __slots__ = ("client_id", "message_name", "payload", "delivery_to", "metadata", "payload_metadata")
    CLIENT_ID_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_NAME_FIELD_NUMBER: _ClassVar[int]
    PAYLOAD_FIELD_NUMBER: _ClassVar[int]
    DELIVERY_TO_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    PAYLOAD_METADATA_FIELD_NUMBER: _ClassVar[int]
    client_id: str
    message_name: str
    payload: str
    delivery_to: str
    metadata: str
    payload_metadata: str
    def __init__(self, client_id: _Optional[str] = ..., message_name: _Optional[str] = ..., payload: _Optional[str] = ..., delivery_to: _Optional[str] = ..., metadata: _Optional[str] = ..., payload_metadata: _Optional[str] = ...) -> None: ...

class PublishMessageResponse(_message.Message):
    __slots__ = ("success", "message_idem", "error_message")
    SUCCESS_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_IDEM_FIELD_NUMBER: _ClassVar[int]
    ERROR_MESSAGE_FIELD_NUMBER: _ClassVar[int]
    success: bool
    message_idem: str
    error_message: str
    def __init__(self, success: bool = ..., message_idem: _Optional[str] = ..., error_message: _Optional[str] = ...) -> None: ...

class SubscribeRequest(_message.Message):
    __slots__ = ("client_id", "message_name")
    CLIENT_ID_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_NAME_FIELD_NUMBER: _ClassVar[int]
    client_id: str
    message_name: str
    def __init__(self, client_id: _Optional[str] = ..., message_name: _Optional[str] = ...) -> None: ...

class UnsubscribeRequest(_message.Message):
    __slots__ = ("client_id", "message_name")
    CLIENT_ID_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_NAME_FIELD_NUMBER: _ClassVar[int]
    client_id: str
    message_name: str
    def __init__(self, client_id: _Optional[str] = ..., message_name: _Optional[str] = ...) -> None: ...

class UnsubscribeResponse(_message.Message):
    __slots__ = ("success", "message")
    SUCCESS_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    success: bool
    message: str
    def __init__(self, success: bool = ..., message: _Optional[str] = ...) -> None: ...

class MessageStreamResponse(_message.Message):
    __slots__ = ("message_idem", "message_name", "payload", "partition_block", "metadata", "sender")
    MESSAGE_IDEM_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_NAME_FIELD_NUMBER: _ClassVar[int]
    PAYLOAD_FIELD_NUMBER: _ClassVar[int]
    PARTITION_BLOCK_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    SENDER_FIELD_NUMBER: _ClassVar[int]
    message_idem: str
    message_name: str
    payload: str
    partition_block: int
    metadata: str
    sender: str
    def __init__(self, message_idem: _Optional[str] = ..., message_name: _Optional[str] = ..., payload: _Optional[str] = ..., partition_block: _Optional[int] = ..., metadata: _Optional[str] = ..., sender: _Optional[str] = ...) -> None: ...

class AcknowledgeRequest(_message.Message):
    __slots__ = ("client_id", "message_idem", "message_name", "partition_block")
    CLIENT_ID_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_IDEM_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_NAME_FIELD_NUMBER: _ClassVar[int]
    PARTITION_BLOCK_FIELD_NUMBER: _ClassVar[int]
    client_id: str
    message_idem: str
    message_name: str
    partition_block: int
    def __init__(self, client_id: _Optional[str] = ..., message_idem: _Optional[str] = ..., message_name: _Optional[str] = ..., partition_block: _Optional[int] = ...) -> None: ...

class AcknowledgeResponse(_message.Message):
    __slots__ = ("success", "message")
    SUCCESS_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    success: bool
    message: str
    def __init__(self, success: bool = ..., message: _Optional[str] = ...) -> None: ...

class DeferRequest(_message.Message):
    __slots__ = ("client_id", "message_idem", "message_name", "delay_ms", "priority", "reason")
    CLIENT_ID_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_IDEM_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_NAME_FIELD_NUMBER: _ClassVar[int]
    DELAY_MS_FIELD_NUMBER: _ClassVar[int]
    PRIORITY_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    client_id: str
    message_idem: str
    message_name: str
    delay_ms: int
    priority: int
    reason: str
    def __init__(self, client_id: _Optional[str] = ..., message_idem: _Optional[str] = ..., message_name: _Optional[str] = ..., delay_ms: _Optional[int] = ..., priority: _Optional[int] = ..., reason: _Optional[str] = ...) -> None: ...

class DeferResponse(_message.Message):
    __slots__ = ("success", "message", "delivery_time")
    SUCCESS_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    DELIVERY_TIME_FIELD_NUMBER: _ClassVar[int]
    success: bool
    message: str
    delivery_time: int
    def __init__(self, success: bool = ..., message: _Optional[str] = ..., delivery_time: _Optional[int] = ...) -> None: ...

class DiscardRequest(_message.Message):
    __slots__ = ("client_id", "message_idem", "message_name", "reason")
    CLIENT_ID_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_IDEM_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_NAME_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    client_id: str
    message_idem: str
    message_name: str
    reason: str
    def __init__(self, client_id: _Optional[str] = ..., message_idem: _Optional[str] = ..., message_name: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class DiscardResponse(_message.Message):
    __slots__ = ("success", "message")
    SUCCESS_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    success: bool
    message: str
    def __init__(self, success: bool = ..., message: _Optional[str] = ...) -> None: ...

class ReplayRequest(_message.Message):
    __slots__ = ("client_id", "message_idem", "message_name")
    CLIENT_ID_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_IDEM_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_NAME_FIELD_NUMBER: _ClassVar[int]
    client_id: str
    message_idem: str
    message_name: str
    def __init__(self, client_id: _Optional[str] = ..., message_idem: _Optional[str] = ..., message_name: _Optional[str] = ...) -> None: ...

class ReplayResponse(_message.Message):
    __slots__ = ("success", "message", "message_data")
    SUCCESS_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_DATA_FIELD_NUMBER: _ClassVar[int]
    success: bool
    message: str
    message_data: str
    def __init__(self, success: bool = ..., message: _Optional[str] = ..., message_data: _Optional[str] = ...) -> None: ...

class PauseRequest(_message.Message):
    __slots__ = ("client_id", "message_name", "reason")
    CLIENT_ID_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_NAME_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    client_id: str
    message_name: str
    reason: str
    def __init__(self, client_id: _Optional[str] = ..., message_name: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class PauseResponse(_message.Message):
    __slots__ = ("success", "message")
    SUCCESS_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    success: bool
    message: str
    def __init__(self, success: bool = ..., message: _Optional[str] = ...) -> None: ...

class ContinueRequest(_message.Message):
    __slots__ = ("client_id", "message_name")
    CLIENT_ID_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_NAME_FIELD_NUMBER: _ClassVar[int]
    client_id: str
    message_name: str
    def __init__(self, client_id: _Optional[str] = ..., message_name: _Optional[str] = ...) -> None: ...

class ContinueResponse(_message.Message):
    __slots__ = ("success", "message")
    SUCCESS_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    success: bool
    message: str
    def __init__(self, success: bool = ..., message: _Optional[str] = ...) -> None: ...
