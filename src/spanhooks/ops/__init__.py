"""Operations subsystems from the seeds, each on the one dispatch core and visible on ``/metrics``.

Import what you use from here::

    from spanhooks.ops import register_health_check, register_polling_task, register_cleanup
"""

from spanhooks.ops.errors import (
    ErrorContext,
    ErrorHandler,
    ErrorInfo,
    ErrorSeverity,
    get_error_handler,
    handle_error,
    handle_error_async,
    register_error_handler,
)
from spanhooks.ops.health import (
    Alert,
    AlertSeverity,
    HealthMonitor,
    HealthResult,
    HealthStatus,
    get_health_monitor,
    register_health_check,
)
from spanhooks.ops.messaging import (
    HandlerContext,
    MeetingEventHandler,
    MessageContext,
    clear_handlers,
    get_handler,
    invoke_handler,
    invoke_handler_sync,
    register_conversation_handler,
    register_message_notification_handler,
    register_one_way_handler,
)
from spanhooks.ops.polling import (
    PollingManager,
    TaskState,
    get_polling_manager,
    register_polling_task,
)
from spanhooks.ops.resources import (
    CleanupPriority,
    ResourceManager,
    ResourceType,
    get_resource_manager,
    register_cleanup,
)
from spanhooks.ops.router import EventRouter
from spanhooks.ops.session import (
    ALLOWED_TRANSITIONS,
    SessionState,
    SessionStatus,
    SessionTransition,
    sessions_by_status,
)

__all__ = [
    "ALLOWED_TRANSITIONS",
    "Alert",
    "AlertSeverity",
    "CleanupPriority",
    "ErrorContext",
    "ErrorHandler",
    "ErrorInfo",
    "ErrorSeverity",
    "EventRouter",
    "HandlerContext",
    "HealthMonitor",
    "HealthResult",
    "HealthStatus",
    "MeetingEventHandler",
    "MessageContext",
    "PollingManager",
    "ResourceManager",
    "ResourceType",
    "SessionState",
    "SessionStatus",
    "SessionTransition",
    "TaskState",
    "clear_handlers",
    "get_error_handler",
    "get_handler",
    "get_health_monitor",
    "get_polling_manager",
    "get_resource_manager",
    "handle_error",
    "handle_error_async",
    "invoke_handler",
    "invoke_handler_sync",
    "register_cleanup",
    "register_conversation_handler",
    "register_error_handler",
    "register_health_check",
    "register_message_notification_handler",
    "register_one_way_handler",
    "register_polling_task",
    "sessions_by_status",
]
