# The KPI processor image: `kpi worker`, `kpi simulate`, `kpi replay`, ... (ENTRYPOINT is `kpi`).
#
#   docker build -t contact-kpi .
#   docker run --rm contact-kpi --help
#   docker run --rm -e KPI_KAFKA__BOOTSTRAP=kafka:9092 -e KPI_WEB_HOST=0.0.0.0 -p 6066:6066 contact-kpi worker
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app

# Dependencies first, so that a code change does not reinstall them.
COPY pyproject.toml README.md ./
COPY processor ./processor
COPY schemas ./schemas
RUN pip install .

# The wheel carries schemas/ as processor/schemas (see pyproject.toml), so the installed package
# is self-contained.

# Inside a container the worker must listen on all interfaces for Prometheus to reach it.
ENV KPI_WEB_HOST=0.0.0.0 \
    KPI_DATA_DIR=/var/lib/kpi

RUN useradd --system --uid 10001 --home-dir /var/lib/kpi --create-home kpi
USER kpi

EXPOSE 6066
ENTRYPOINT ["kpi"]
CMD ["--help"]
