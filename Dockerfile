# The shop's image: one image for every process (web, relay, consumers, Celery worker and beat);
# docker-compose.yml picks the command. Without Docker, `make run` / `make test` do the same
# on the host (scripts/services.sh).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# A fixed, unprivileged user; the code stays owned by root, so the processes cannot change it.
RUN groupadd --system --gid 10001 shop \
    && useradd --system --uid 10001 --gid shop --home-dir /home/shop --create-home \
       --shell /usr/sbin/nologin shop

WORKDIR /app

# Dependencies first: this layer is rebuilt only when the requirements change. Only the runtime
# (requirements.txt): the test, lint and profiling tools of requirements-dev.txt stay out of the
# image; constraints.txt pins the versions the test suite ran with, transitive ones too.
# (psycopg[binary] and confluent-kafka ship manylinux wheels: no compiler needed.)
COPY requirements.txt constraints.txt ./
RUN pip install -r requirements.txt -c constraints.txt

COPY . .

# Static files for a reverse proxy in front of gunicorn (STATIC_ROOT=/app/.static).
# collectstatic reads settings but never connects to a service.
RUN python manage.py collectstatic --noinput --verbosity 0

USER shop

EXPOSE 8000

CMD ["gunicorn", "-c", "config/gunicorn_config.py", "config.asgi:application", \
     "--bind", "0.0.0.0:8000", "--workers", "3", "--access-logfile", "-"]
