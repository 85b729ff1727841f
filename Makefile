# shoplens: two commands on a fresh clone, `make demo` and `make test`; each sets itself up when needed.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
export DAGSTER_HOME := $(CURDIR)/.dagster_home
DBT_FILES := $(shell find dbt_project/models dbt_project/macros dbt_project/seeds dbt_project/tests -type f 2>/dev/null) dbt_project/dbt_project.yml
MANIFEST := dbt_project/target/manifest.json
SCALE ?= small
SIZE ?=

.PHONY: setup manifest demo test test-spark dev bench lint format clean-data help

help:
	@echo "make demo   - set up if needed and run the whole pipeline on the embedded synthetic shop"
	@echo "make test   - set up if needed and run the test suite"
	@echo "make dev    - open the Dagster UI on http://127.0.0.1:3000"
	@echo "make bench  - benchmark the pipeline (SIZE=large for the 50M-line shop)"
	@echo "make test-spark - build every mart on local Spark and compare with DuckDB (installs pyspark)"

# The venv is (re)built when missing or when pyproject.toml changed since the last install.
$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@echo "installing shoplens and its dependencies into $(VENV) (about 90 s the first time)..."
	@$(PY) -m pip install -q --upgrade pip
	@$(PY) -m pip install -q -e ".[dev]"
	@touch $(STAMP)

setup: $(STAMP) $(DAGSTER_HOME)/dagster.yaml

$(DAGSTER_HOME)/dagster.yaml: dagster.yaml
	@mkdir -p $(DAGSTER_HOME)
	@cp dagster.yaml $(DAGSTER_HOME)/dagster.yaml

# The dbt manifest is prepared here, never while Dagster imports the code.
$(MANIFEST): $(STAMP) $(DBT_FILES)
	@cd dbt_project && ../$(VENV)/bin/dbt parse --profiles-dir . --quiet
	@touch $(MANIFEST)

manifest: $(MANIFEST)

# make demo                          the synthetic shop (SCALE=tiny|small|medium|large)
# make demo SOURCE=olist INPUT=dir    a real export: online_retail, olist, shopify, ga4, online_shoppers
demo: setup manifest
	@$(PY) -m pipelines.demo --scale $(SCALE) $(if $(SOURCE),--source $(SOURCE) --input $(INPUT),)

test: setup manifest
	@$(PY) -m pytest -q

dev: setup manifest
	@echo "Dagster UI: http://127.0.0.1:3000"
	@$(VENV)/bin/dagster dev -m pipelines.definitions -h 127.0.0.1 -p 3000

SPARK_STAMP := $(VENV)/.spark-installed-stamp

$(SPARK_STAMP): $(STAMP) requirements-spark.txt
	@echo "installing pyspark and dbt-spark into $(VENV) (about 500 MB the first time)..."
	@$(PY) -m pip install -q -r requirements-spark.txt
	@touch $(SPARK_STAMP)

test-spark: setup manifest $(SPARK_STAMP)
	@$(PY) -m pytest -m spark tests/test_spark.py -q

bench: setup manifest
	@$(PY) -m pipelines.bench $(if $(SIZE),--sizes $(SIZE),) $(BENCH_ARGS)

lint: setup
	@$(VENV)/bin/ruff check pipelines models tests
	@$(VENV)/bin/ruff format --check pipelines models tests

format: setup
	@$(VENV)/bin/ruff format pipelines models tests
	@$(VENV)/bin/ruff check --fix pipelines models tests

clean-data:
	rm -rf data/landing data/raw data/warehouse data/exports data/reports
