# sessiond: install, demo and test. Every target is idempotent.
#
#   make demo   installs what it needs and runs sessiond in the foreground
#   make test   installs what the tests need and runs them all

PREFIX     ?= /opt/sessiond
VENV       := $(PREFIX)/venv
PY         := $(VENV)/bin/python
# The TLS scanner for the tests, in a venv of its own (requirements-sslyze.txt says why).
SSLYZE_PY  := $(PREFIX)/sslyze-venv/bin/python
BINDIR     ?= /usr/local/bin
DEMO_PORT  ?= 4443
DEMO_STATE ?= $(CURDIR)/var/demo
PYTEST_ARGS ?=

# Headers to build xpra (requirements-xpra.txt) from source: X11 extensions,
# GTK3 and GObject introspection for its client, lz4 and xxhash for its wire.
XPRA_DEB_PACKAGES := libx11-dev libxtst-dev libxcomposite-dev libxdamage-dev libxfixes-dev libxkbfile-dev \
	libxrandr-dev libxres-dev libxi-dev liblz4-dev libxxhash-dev libgtk-3-dev libgirepository1.0-dev libcairo2-dev
# Debian packages: gcc (isolation/wait.c, the sandbox's native waiter; sessiond/agent/native/*.c), the X server and demo apps, fonts for xterm, the venv
# module, libXext for MIT-SHM capture, libXdamage/libXfixes/libXcomposite for
# per-window capture (ctypes), PAM, and the tools tests use;
# pulseaudio (each session's sound server) and pulseaudio-utils (parec, pactl);
# etcd-server (the farm directory's tests start real members); xclip (clipboard tests);
# ffmpeg (ffplay plays the lavfi test video of the video-region tests and bench_video.py).
# svclient view's Qt xcb platform (what libqxcb.so and Qt6Gui/XcbQpa link that
# Debian does not install by default), and openbox + xdotool for its tests.
# x11-xkb-utils: the viewer's keyboard tests set a German layout (setxkbmap).
DEB_PACKAGES := gcc xvfb xterm x11-apps x11-utils xfonts-base python3-venv \
	libx11-6 libxext6 libxdamage1 libxfixes3 libxcomposite1 libpam0g libpam-modules passwd util-linux procps \
	desktop-file-utils adwaita-icon-theme hicolor-icon-theme usbip \
	pulseaudio pulseaudio-utils \
	chromium nodejs iproute2 etcd-server \
	xclip ffmpeg \
	libxcb-cursor0 libxkbcommon-x11-0 libxkbcommon0 libxcb-icccm4 libxcb-keysyms1 libxcb-render-util0 \
	libxcb-image0 libxcb-shape0 libxcb-randr0 libxcb-xfixes0 libxcb-sync1 libxcb-xkb1 libxcb-glx0 \
	libx11-xcb1 libegl1 libgl1 libfontconfig1 libfreetype6 libglib2.0-0 libdbus-1-3 \
	libxcb-xinerama0 x11-xkb-utils openbox xdotool \
	$(XPRA_DEB_PACKAGES)

.PHONY: all install deps-debian venv sslyze xpra demo test unit lint webtest clean

all: install

deps-debian:
	@missing=$$(for p in $(DEB_PACKAGES); do \
		dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q 'install ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
		echo "installing Debian packages:" $$missing; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	fi

$(PY):
	/usr/bin/python3 -m venv $(VENV)

venv: $(PY)
	$(PY) -m pip install -q --disable-pip-version-check -r requirements-build.txt -r requirements.txt -r requirements-test.txt \
		-r requirements-viewer.txt

$(SSLYZE_PY):
	/usr/bin/python3 -m venv $(PREFIX)/sslyze-venv

sslyze: $(SSLYZE_PY)
	$(SSLYZE_PY) -m pip install -q --disable-pip-version-check -r requirements-sslyze.txt

# xpra for sessions with [session] display = xpra, in its own venv (docs/xpra.md).
# Optional: a failed build warns and the install goes on. The first build takes
# minutes; the wheel is cached under /var/cache/sessiond/wheels after that.
xpra: deps-debian
	sh conf/xpra/install-xpra $(PREFIX) requirements-xpra.txt conf/xpra

# A real (non-editable) install into the venv: session users run this copy,
# and the tests exercise exactly this layout.
install: deps-debian venv xpra
	$(PY) -m pip install -q --disable-pip-version-check --no-deps --force-reinstall --no-build-isolation .
	install -d $(VENV)/libexec
	cc -O2 -Wall -Wextra -Werror -o $(VENV)/libexec/sessiond-wait isolation/wait.c || \
		echo "warning: isolation/wait.c did not build; sandboxes wait in Python (isolation/init.py)"
	# -O3: the two-colour loop is written to be vectorized (2.5x faster than at -O2).
	cc -O3 -Wall -Wextra -Werror -shared -fPIC -o $(VENV)/lib/sessiond-glyph-cells.so \
		sessiond/agent/native/glyph_cells.c sessiond/agent/native/scroll_rows.c || \
		echo "warning: sessiond/agent/native/*.c did not build; GLYPHS cells and scroll rows are done in Python (glyph_native.py, row_native.py)"
	# The viewer's GLYPHS painter (client/glyph_paint.py; numpy draws where it did not build).
	cc -O3 -Wall -Wextra -Werror -shared -fPIC -o $(VENV)/lib/svclient-paint-cells.so client/native/paint_cells.c || \
		echo "warning: client/native/paint_cells.c did not build; the viewer draws GLYPHS regions with numpy (glyph_paint.py)"
	# The zygote's -OO bytecode (isolation/launcher.py AGENT_PYCACHE): stdlib and venv, ~15 s.
	rm -rf $(VENV)/agent-pycache
	$(PY) -OO -X pycache_prefix=$(VENV)/agent-pycache -m compileall -q -j 0 \
		-x '/(test|tests|idlelib|tkinter|lib2to3|ensurepip|turtledemo|PySide6|shiboken6)/' \
		$$($(PY) -c 'import sysconfig; print(sysconfig.get_path("stdlib"))') \
		$$($(PY) -c 'import sysconfig; print(sysconfig.get_path("purelib"))') > /dev/null || true
	chmod -R a+rX $(PREFIX)
	install -d $(BINDIR)
	ln -sf $(VENV)/bin/sessiond $(BINDIR)/sessiond
	ln -sf $(VENV)/bin/svclient $(BINDIR)/svclient
	ln -sf $(VENV)/bin/sessionctl $(BINDIR)/sessionctl
	ln -sf $(VENV)/bin/sessiond-send $(BINDIR)/sessiond-send
	install -m 0644 conf/pam.d/sessiond /etc/pam.d/sessiond

demo: install
	$(PY) -m sessiond.demo --port $(DEMO_PORT) --state-dir $(DEMO_STATE) --apps $(CURDIR)/conf/apps

# Tests run from the installed venv, with the checkout NOT on sys.path, so
# they import the installed packages (tests/test_layout.py checks that).
test: install lint webtest sslyze
	cd tests && SESSIOND_PREFIX=$(PREFIX) $(VENV)/bin/pytest -p no:cacheprovider $(PYTEST_ARGS)

# Static checks, seconds: ruff on the whole tree (rules in pyproject.toml),
# mypy --strict on the parts that must stay fully typed. The import
# boundaries are a unit test (tests/unit/test_import_boundaries.py).
lint: venv
	$(VENV)/bin/ruff check --no-cache .
	$(VENV)/bin/mypy --strict --cache-dir=/dev/null protocol/ isolation/ media/

# The web client's JavaScript unit tests (node's built-in runner, no npm install).
webtest:
	node --test client/web/test/

unit: install
	cd tests && SESSIOND_PREFIX=$(PREFIX) $(VENV)/bin/pytest -p no:cacheprovider -m "not integration" $(PYTEST_ARGS)

clean:
	rm -rf build *.egg-info var
