# The two commands a newcomer needs:
#   make run    fetch the default model and run infermon on its embedded config
#   make test   install every test dependency and run all tests

CARGO ?= cargo

.PHONY: run test model test-deps build check-cuda fmt lint bench deb

run: model
	$(CARGO) run --release -- serve

model:
	./scripts/fetch-model.sh

test-deps:
	./scripts/install-test-deps.sh

test: test-deps model
	./scripts/run-tests.sh

build:
	$(CARGO) build --release

# Debian package with the systemd unit: target/debian/infermon_<version>_<arch>.deb
deb: model
	$(CARGO) build --release
	./packaging/build-deb.sh target/release/infermon target/debian

check-cuda:
	./scripts/check-cuda-build.sh

fmt:
	$(CARGO) fmt --all

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --all-targets -- -D warnings
