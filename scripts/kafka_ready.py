"""Exit 0 when a Kafka cluster at the given bootstrap address answers a metadata request."""

import sys

from confluent_kafka.admin import AdminClient


def main() -> int:
    bootstrap = sys.argv[1] if len(sys.argv) > 1 else "127.0.0.1:59092"
    admin = AdminClient({"bootstrap.servers": bootstrap, "log_level": 0})
    try:
        admin.list_topics(timeout=2)
    except Exception:  # any failure means "not ready"; the caller retries or reports
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
