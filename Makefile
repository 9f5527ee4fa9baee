# l2f — the two commands are `make demo` and `make test` (see README.md).
SHELL := /bin/bash
KAFKA := deploy/local/kafka/kafka.sh

.PHONY: demo test lint build bench soak kafka-up kafka-down fmt

## demo: the hub on the embedded broker, nothing installed
demo:
	cargo run -q -p l2f-cli -- demo

## test: every test; starts the local Apache Kafka when KAFKA_BOOTSTRAP is unset, stops it after
test:
	scripts/test.sh

## lint: formatting and clippy, warnings are errors
lint:
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets -- -D warnings

fmt:
	cargo fmt --all

build:
	cargo build --workspace

## bench: bus throughput beside kcat and Kafka's own perf tools; codec, mock and connector-sink benchmarks; replay vs kcat
bench:
	scripts/bench.sh

## soak: the fault soak (2,000 customers, 10 % faults, an app down 20 s, two connector process kills, a broker kill) on a broker of its own; SOAK_ARGS for other runs
soak:
	scripts/soak.sh $(SOAK_ARGS)

## kafka-up: fetch (cached) and start Apache Kafka 4.3.1 in KRaft mode on 127.0.0.1:9092
kafka-up:
	@$(KAFKA) up

## kafka-down: stop it and remove its data
kafka-down:
	@$(KAFKA) down
