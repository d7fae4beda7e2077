# Pipeline: data production for a particle-physics experiment.
SHELL := /bin/bash
.DEFAULT_GOAL := help

CONFIGURATION ?= Release
HOST_DLL := services/Pipeline.Host/bin/$(CONFIGURATION)/net10.0/Pipeline.Host.dll
RUNS ?= 2
FILES ?= 4
EVENTS ?= 500
REPROCESS ?= 0

.PHONY: help build run cli demo audit reconcile test faults load soak bench microbench up down clean

help: ## List the targets
	@grep -E '^[a-z]+:.*## ' $(MAKEFILE_LIST) | sed -E 's/:.*## /\t/' | expand -t 10

build: ## Build every project
	@dotnet build Pipeline.sln -c $(CONFIGURATION) --nologo -v quiet

run: build ## The whole pipeline in one process on embedded defaults; API on http://127.0.0.1:8080 (SAMPLE_RUNS=N adds N sample runs)
	@dotnet $(HOST_DLL) run

CLI_PACKAGE := services/Pipeline.Cli/bin/$(CONFIGURATION)/package

# Installed from a packages folder of its own: the user's NuGet cache may hold an older build under the same version.
cli: ## Install the `pipeline` command line as a .NET tool (~/.dotnet/tools), from this build and without a network
	@dotnet build services/Pipeline.Cli -c $(CONFIGURATION) --nologo -v quiet
	@dotnet tool uninstall --global Pipeline.Cli >/dev/null 2>&1 || true
	@cache=$$(mktemp -d) && NUGET_PACKAGES=$$cache dotnet tool install --global --add-source $(CLI_PACKAGE) --ignore-failed-sources Pipeline.Cli; \
	  status=$$?; rm -rf $$cache; exit $$status
	@case ":$$PATH:" in *":$$HOME/.dotnet/tools:"*) ;; *) echo "Add ~/.dotnet/tools to PATH to run it: export PATH=\"\$$PATH:\$$HOME/.dotnet/tools\"";; esac

# The demo's command: on remote storage (STORAGE=remote), inside a Slurm cluster of its own (EXECUTOR=slurm), with its state in a PostgreSQL server of its own (STORE=postgres).
DEMO_COMMAND := $(if $(filter remote,$(STORAGE)),bash tests/xrootd/remote-demo.sh $(HOST_DLL),dotnet $(HOST_DLL) demo)
DEMO_COMMAND := $(if $(filter slurm,$(EXECUTOR)),bash tests/slurm/slurm-demo.sh $(DEMO_COMMAND),$(DEMO_COMMAND))
DEMO_COMMAND := $(if $(filter postgres,$(STORE)),bash tests/postgres/postgres-demo.sh $(DEMO_COMMAND),$(DEMO_COMMAND))

demo: build ## Sample data end to end through every stage; last line is a JSON summary (RUNS=, FILES=, EVENTS=, REPROCESS=1, STORAGE=remote, EXECUTOR=slurm, STORE=postgres)
	@RUNS=$(RUNS) FILES=$(FILES) EVENTS=$(EVENTS) REPROCESS=$(REPROCESS) $(DEMO_COMMAND)

audit: build ## Audit a campaign from the catalog (CAMPAIGN=prompt, DATA=./data; EVENTS=1 reads every byte too); prints JSON, exits 0 when complete
	@dotnet $(HOST_DLL) audit $(or $(CAMPAIGN),prompt) $(if $(filter 1,$(EVENTS)),--events) --Pipeline:DataDirectory=$(or $(DATA),./data)

reconcile: build ## The catalog against the archive areas (DATA=./data, ARGS=--dry-run --verify); prints JSON, exits 0 when nothing is wrong
	@dotnet $(HOST_DLL) reconcile $(ARGS) --Pipeline:DataDirectory=$(or $(DATA),./data)

test: ## Every test, on a real RabbitMQ (installed and started on 127.0.0.1 when none is given)
	@bash tests/run-tests.sh

faults: build ## Fault suite: services as processes on a broker of their own, killed while FILES (1000) flow (NETWORK=1: on hosts of their own; BROKER_NODES=3: a RabbitMQ cluster; STORE=postgres: the state on a PostgreSQL server, stopped and started mid-run); last line is the JSON report
	@bash tests/ensure-debian-package.sh /usr/sbin/rabbitmq-server rabbitmq-server
	@FILES=$(if $(filter command line environment,$(origin FILES)),$(FILES),1000) dotnet tests/Pipeline.Faults/bin/$(CONFIGURATION)/net10.0/Pipeline.Faults.dll

load: build ## hey on the API's read endpoints for LOAD_SECONDS (60) at LOAD_CONNECTIONS (20) while files flow; last line is the JSON report
	@bash tests/ensure-debian-package.sh /usr/sbin/rabbitmq-server rabbitmq-server
	@bash tests/ensure-debian-package.sh /usr/bin/hey hey
	@dotnet tests/Pipeline.Faults/bin/$(CONFIGURATION)/net10.0/Pipeline.Faults.dll load

soak: build ## A run every SOAK_RUN_SECONDS (10) for SOAK_MINUTES (30): memory, descriptors, drained queues, poisoned messages; last line is the JSON report
	@bash tests/ensure-debian-package.sh /usr/sbin/rabbitmq-server rabbitmq-server
	@dotnet tests/Pipeline.Faults/bin/$(CONFIGURATION)/net10.0/Pipeline.Faults.dll soak

bench: ## Hot paths against baselines measured in the same run; writes bench/results.json (OUT=path), last line is the JSON
	@if [ -z "$${RABBITMQ_URI:-}" ]; then bash tests/rabbitmq/start-local-broker.sh; fi
	@dotnet build tests/Pipeline.Benchmarks -c Release --nologo -v quiet >&2
	@OUT=$(or $(OUT),bench/results.json) dotnet tests/Pipeline.Benchmarks/bin/Release/net10.0/Pipeline.Benchmarks.dll

microbench: ## BenchmarkDotNet micro-benchmarks of the checksum and merge inner loops
	@dotnet build tests/Pipeline.Benchmarks -c Release --nologo -v quiet >&2
	@cd tests/Pipeline.Benchmarks/bin/Release/net10.0 && dotnet Pipeline.Benchmarks.dll micro --filter '*'

up: ## Build the images and start the container deployment (RabbitMQ, PostgreSQL, an XRootD server, every service; needs a Docker engine)
	@bash compose/make-secrets.sh
	@docker compose -f compose/docker-compose.yml up -d --build

down: ## Stop the container deployment (volumes are kept; add `-v` by hand to drop them)
	@docker compose -f compose/docker-compose.yml down

clean: ## Remove build output and the embedded state under ./data
	@dotnet clean Pipeline.sln -c $(CONFIGURATION) --nologo -v quiet
	@rm -rf data
