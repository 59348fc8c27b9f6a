# ttp-atlas: `make run` builds the layers and serves them; `make test` runs every test.
SHELL := /bin/bash
PYTHON ?= python3
SHARED_DATA := $(abspath ../shared/data/boundaries)
export TTP_ATLAS_DATA ?= $(if $(wildcard $(SHARED_DATA)/PROVENANCE.md),$(SHARED_DATA),$(HOME)/.cache/ttp-atlas/boundaries)
export TTP_ATLAS_BUILD ?= build
# Debian packages: nginx fronts `ttp-atlas serve`; the tests also use a headless browser, a PDF
# rasteriser, wrk, and the GIS clients the service is loaded in (QGIS 3.22 under Debian's python3, GDAL).
SERVE_APT := nginx
TEST_APT := $(SERVE_APT) chromium chromium-driver poppler-utils wrk fonts-dejavu-core qgis python3-qgis gdal-bin
STAMP := .make

.PHONY: run test install serve-deps system-deps node-deps data build serve bench clean

run: install serve-deps data build serve

test: install system-deps node-deps data
	$(PYTHON) -m pytest -q; status=$$?; if [ $$status -eq 5 ]; then echo "no tests collected"; exit 1; fi; exit $$status

install: $(STAMP)/install
$(STAMP)/install: pyproject.toml
	$(PYTHON) -m pip install -q -e ".[test]"
	@mkdir -p $(STAMP) && touch $@

# Installs the Debian packages of $(1) that are missing (as root, or through sudo).
apt_install = missing=""; for p in $(1); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -q && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -q $$missing; fi

serve-deps: $(STAMP)/serve-deps
$(STAMP)/serve-deps: Makefile
	@$(call apt_install,$(SERVE_APT))
	@mkdir -p $(STAMP) && touch $@

system-deps: $(STAMP)/system-deps
$(STAMP)/system-deps: Makefile
	@$(call apt_install,$(TEST_APT))
	@mkdir -p $(STAMP) && touch $@

# npm packages the tests use: the MapLibre style-spec validator (installed under .make/node).
NODE_PACKAGES := @maplibre/maplibre-gl-style-spec@26
node-deps: $(STAMP)/node-deps
$(STAMP)/node-deps:
	@mkdir -p $(STAMP)/node && npm install -q --no-audit --no-fund --prefix $(STAMP)/node $(NODE_PACKAGES)
	@touch $@

# Check the boundary data (download it from the upstream publishers when it is not there).
data: install
	ttp-atlas data --data "$(TTP_ATLAS_DATA)"

build: install
	ttp-atlas build --data "$(TTP_ATLAS_DATA)" --out "$(TTP_ATLAS_BUILD)"

serve: install
	ttp-atlas serve --data "$(TTP_ATLAS_DATA)" --build "$(TTP_ATLAS_BUILD)"

bench: install system-deps build
	$(PYTHON) -m pip install -q -e ".[test,bench]"
	$(PYTHON) -m bench --out bench-results.md

clean:
	rm -rf build $(STAMP) test-artifacts bench-results.md
