"""Give back the thread an async request keeps for its sync code, before a long wait.

Under ASGI, Django runs each request in an asgiref ThreadSensitiveContext: the request's sync
code (the request_started signal's receivers, MiddlewareMixin hooks, a sync view) runs in one
thread of the request's own, created on first use and ended only when the request ends. An
async view that then waits for 30 s keeps that idle thread for 30 s: a thousand long-polls, a
thousand threads (about 400 KiB each). Releasing it ends the thread now; sync code of the
request after the wait gets a new one, which the request's end shuts down as before.

Only for a request whose sync code left nothing in its thread: Django's database connection is
per thread, so the caller must have closed it (a pooled connection goes back to the pool).
Relies on asgiref's SyncToAsync registry of per-context executors (asgiref is pinned).
"""

from asgiref.sync import SyncToAsync


def release_request_thread() -> None:
    """End the current request's sync thread, if it has one; call from the event loop between
    sync calls (none of the request's sync code may be running)."""
    context = SyncToAsync.thread_sensitive_context.get(None)
    if context is None:
        return
    executor = SyncToAsync.context_to_thread_executor.pop(context, None)
    if executor is not None:
        executor.shutdown(wait=False)  # idle: its thread exits at once
