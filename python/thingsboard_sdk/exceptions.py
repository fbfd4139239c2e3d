"""Exceptions raised by the SDK (the Rust engine imports them from here)."""


class QueueFullError(RuntimeError):
    """``send_*`` was refused because ``max_queued_messages`` messages await acknowledgement.

    Nothing was queued. Call ``flush()`` (or wait on an earlier message's handle) and retry, or
    construct the client with a larger ``max_queued_messages``.
    """


class MessageRefusedError(RuntimeError):
    """The server refused a message: it closed the connection right after receiving it, again
    and again, before acknowledging anything (most likely the message is bigger than the
    server's ``maxPayloadSize``). The client gave that message up and went on with the rest of
    its queue; the error text names its topic and size. Raised by the message's handle
    (``wait()``, ``await handle``); ``get()`` returns ``TB_ERR_PAYLOAD_SIZE`` (9) instead.

    Construct the client with ``session_limits=True`` (it then splits by the server's limit)
    or ``max_payload_size=...`` to avoid it.
    """


class ProvisionError(Exception):
    """Provisioning did not succeed.

    Attributes:
        status: ThingsBoard's ``status`` (``NOT_FOUND``, ``FAILURE``), or ``TIMEOUT`` when no
            answer came in time, or ``CONNECTION_FAILED`` when the server could not be reached.
        error_msg: ThingsBoard's ``errorMsg``, or what went wrong.
    """

    def __init__(self, status: str, error_msg: str = "") -> None:
        super().__init__(f"provisioning failed: {status}: {error_msg}" if error_msg else status)
        self.status = status
        self.error_msg = error_msg
