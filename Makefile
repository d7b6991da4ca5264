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

# The outbox, deliver and ingest (cmd/shipper: enqueue FILE, alone and through
# a daemon, the socket's POST /v1/enqueue) benchmarks, each with its baseline in the same run, as one
# table (internal/benchreport), each value the median of BENCHCOUNT runs, each
# ratio the median of the rounds' own ratios, with their range. Not
# part of make test; about 5 minutes on a 2-core machine. The raw go test
# output is kept in bin/bench.txt. The suite runs BENCHCOUNT times rather than
# with -count, which would run a baseline's repetitions before its pair's: a
# pair's two sides then run minutes apart, and the disk's fsync time drifts.
BENCHTIME ?= 2s
BENCHCOUNT ?= 3
bench:
	@mkdir -p bin
	@: > bin/bench.txt
	@for i in $$(seq $(BENCHCOUNT)); do \
		echo "== round $$i of $(BENCHCOUNT)"; echo "round: $$i" >> bin/bench.txt; \
		$(GO) test -run '^$$' -p 1 -bench . -benchmem -benchtime $(BENCHTIME) -count 1 -timeout 20m ./outbox/ ./deliver/ ./cmd/shipper/ >> bin/bench.txt || { tail -50 bin/bench.txt; exit 1; }; \
	done
	$(GO) run ./internal/benchreport < bin/bench.txt

demo: build
	$(BIN) demo

fmt:
	gofmt -w $$(git ls-files '*.go')

vet:
	$(GO) vet ./...

clean:
	rm -rf bin

# Catch-up against the test server with its real limits (240 requests per
# sliding 60 s per address, batches of 250), in real time, default options:
# 15,000 events from a clear window and right after another client used the
# window, 60,000 events over several windows, and 4,000 records under 30% 503
# + 10% answers lost after storing. Prints one table (duration, records/s,
# share of the 500 records/s bound, 429s). Not part of make test; about 4
# minutes.
.PHONY: bench-server
bench-server:
	SHIPPER_BENCH_SERVER=1 $(GO) test -run '^TestBenchServer$$' -count=1 -v -timeout 20m ./deliver/
