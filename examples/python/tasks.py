"""A Python Celery app registering the same task names as examples/tasks.ts.

Run a worker next to the Node one (same broker, same queue):

    cd examples/python
    CELERY_BROKER_URL=redis://127.0.0.1:6379/0 celery -A tasks worker -l INFO

Task names are "tasks.<function>" because the module is imported as "tasks".
"""
import os

from celery import Celery

app = Celery(
    "tasks",
    broker=os.environ.get("CELERY_BROKER_URL", "redis://127.0.0.1:6379/0"),
    backend=os.environ.get("CELERY_RESULT_BACKEND", "redis://127.0.0.1:6379/0"),
)
app.conf.update(
    task_serializer="json",
    result_serializer="json",
    accept_content=["json"],
    task_track_started=True,
    worker_prefetch_multiplier=1,
)


@app.task
def add(x, y):
    return x + y


@app.task
def mul(x, y):
    return x * y


@app.task
def xsum(numbers):
    return sum(numbers)


@app.task
def fail():
    raise ValueError("boom")


@app.task
def echo(*args, **kwargs):
    return {"args": list(args), "kwargs": kwargs}
