GO ?= go
BIN := bin/shipper

.PHONY: all build test test-long bench demo fmt vet clean

all: build

build:
	$(GO) build -buildvcs=auto -o $(BIN) ./cmd/shipper

# The test command CI runs (.ci/run) and README.md gives.
test:
	@unformatted="$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))"; \
	  if [ -n "$$unformatted" ]; then echo "gofmt needed:"; echo "$$unformatted"; exit 1; fi
	$(GO) vet ./...
	$(GO) test -race -count=1 ./...

# More kill cycles and property-test runs than make test.
test-long:
	SHIPPER_LONG=1 $(GO) test -race -count=1 -timeout 60m ./...

# The outbox, deliver and ingest (cmd/shipper: enqueue FILE, the socket's
# POST /v1/enqueue) benchmarks, each with its baseline in the same run, as one
# table (internal/benchreport). Not part of make test; 3-4 minutes on a 2-core
# machine. The raw go test output is kept in bin/bench.txt.
BENCHTIME ?= 2s
bench:
	@mkdir -p bin
	$(GO) test -run '^$$' -p 1 -bench . -benchmem -benchtime $(BENCHTIME) -timeout 5m ./outbox/ ./deliver/ ./cmd/shipper/ | tee bin/bench.txt | $(GO) run ./internal/benchreport

demo: build
	$(BIN) demo

fmt:
	gofmt -w $$(git ls-files '*.go')

vet:
	$(GO) vet ./...

clean:
	rm -rf bin
