"""Building libomega.so and omega.h (``omega sdk build``), and C programs against them.

The library is cffi's embedding mode: omega.h declares the C API; everything between
its ``api begin`` and ``api end`` markers is read here as cffi declarations, each
function ``omega_x`` (but the three plain-C ones) becoming an ``extern "Python"``
``_omega_py_x`` that ``omega.sdk.cabi`` implements, and a generated C wrapper
``omega_x`` that starts the interpreter once (``c/runtime.c``) and calls it. So the
header is the one list of functions: the wrappers, the declarations and the init code's
names are all made from it, and cffi's compile checks every struct and enum of the
header against its C compiler.

The embedded interpreter is the one this build runs on: its installation
(``sys.base_prefix``) and the directories holding Omega and its dependencies (the
virtualenv's site-packages, and Omega's own source root when it is not installed
there) are written into the library; ``OMEGA_PYTHONHOME`` and ``OMEGA_PYTHONPATH``
override and extend them on a device laid out differently (docs/sdk.md).
"""

from __future__ import annotations

import os
import re
import shutil
import site
import subprocess
import sys
import sysconfig
import tempfile
import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import omega
from omega.errors import ConfigError

__all__ = [
    "HEADER",
    "LIBRARY",
    "SOURCES",
    "SdkBuild",
    "api_functions",
    "build_sdk",
    "compile_program",
    "find_libpython",
]

SOURCES = Path(__file__).resolve().parent / "c"
HEADER = SOURCES / "omega.h"
LIBRARY = "libomega.so"
MODULE = "_omega_cffi"
#: Implemented in c/runtime.c: they must work when the interpreter cannot start.
PLAIN_C = frozenset({"omega_last_error", "omega_status_name", "omega_version"})
#: What c/runtime.c gives the init code (cffi declarations of plain C functions).
_RUNTIME_CDEF = """
void _omega_set_error(const char *sentence);
int _omega_embedded(void);
const char *_omega_search_path(void);
"""
_PROTOTYPE = re.compile(r"OMEGA_API\s+([\w\s*]+?)\s*\b(omega_\w+)\s*\(([^)]*)\)\s*;", re.S)


@dataclass(frozen=True, slots=True)
class Function:
    """One function of omega.h."""

    name: str
    returns: str
    params: str  # as written: "omega_brain *brain, const char *item_id"

    @property
    def arg_names(self) -> list[str]:
        if self.params.strip() in ("", "void"):
            return []
        return [re.findall(r"\w+", p)[-1] for p in self.params.split(",")]

    @property
    def python_name(self) -> str:
        return "_omega_py_" + self.name.removeprefix("omega_")


@dataclass(frozen=True, slots=True)
class SdkBuild:
    """What a build made, and the Python it embeds."""

    directory: Path
    library: Path
    header: Path
    python_home: str
    python_path: tuple[str, ...]
    libpython: Path

    def as_dict(self) -> dict[str, Any]:
        return {
            k: [str(p) for p in v] if isinstance(v, tuple) else str(v)
            for k, v in asdict(self).items()
        }


def _api_region(header: str) -> str:
    try:
        start = header.index("/* -- api begin")
        end = header.index("/* -- api end")
    except ValueError:
        raise ConfigError(f"{HEADER} lacks its api begin/end markers") from None
    return header[header.index("\n", start) + 1 : end]


def api_functions(header: str | None = None) -> list[Function]:
    """The functions omega.h declares, in order."""
    text = _api_region(HEADER.read_text(encoding="utf-8") if header is None else header)
    return [
        Function(name, " ".join(returns.split()), " ".join(params.split()))
        for returns, name, params in _PROTOTYPE.findall(_strip_comments(text))
    ]


def _strip_comments(text: str) -> str:
    return re.sub(r"/\*.*?\*/", "", text, flags=re.S)


def cffi_declarations(header: str) -> str:
    """omega.h's types, and its functions as ``extern "Python"`` ones, for ``ffi.cdef``."""
    region = _strip_comments(_api_region(header))
    types = _PROTOTYPE.sub("", region)
    externs = [
        f'extern "Python" {f.returns} {f.python_name}({f.params});'
        for f in api_functions(header)
        if f.name not in PLAIN_C
    ]
    return "\n".join([types, *externs, _RUNTIME_CDEF])


def _wrappers(functions: Sequence[Function]) -> str:
    """The exported C functions: start the runtime, call the Python half."""
    out = []
    for f in functions:
        if f.name in PLAIN_C:
            continue
        out.append(f"static {f.returns} {f.python_name}({f.params});")
        out.append(
            f"OMEGA_API {f.returns} {f.name}({f.params})\n{{\n"
            "    if (!omega__enter()) return OMEGA_E_MODEL;\n"
            f"    return {f.python_name}({', '.join(f.arg_names)});\n}}"
        )
    return "\n".join(out)


def _init_code(functions: Sequence[Function]) -> str:
    """The Python the library runs once, at its first call. It never raises: if Omega
    cannot be imported, every function answers OMEGA_E_MODEL with the reason."""
    names = [f.name for f in functions if f.name not in PLAIN_C]
    return f"""
import sys
from {MODULE} import ffi, lib

NAMES = {names!r}


def _fail_every_call(error):
    sentence = (
        "the Omega library could not load its Python package "
        f"({{type(error).__name__}}: {{error}}); sys.path is {{sys.path}}; set "
        "OMEGA_PYTHONPATH to the directories holding Omega and its dependencies"
    ).encode("utf-8", "replace")[:1000].decode("utf-8", "ignore").encode("utf-8")

    def failing(*args):
        lib._omega_set_error(sentence)
        return 5  # OMEGA_E_MODEL

    for name in NAMES:
        ffi.def_extern(name="_omega_py_" + name[len("omega_"):], error=5)(failing)


try:
    if lib._omega_embedded():
        import site  # not run at start-up: only the build's directories, .pth files too

        for directory in ffi.string(lib._omega_search_path()).decode().split(":"):
            if directory:
                site.addsitedir(directory)
    from omega.sdk import cabi

    cabi.install(ffi, lib, NAMES)
except BaseException as error:  # noqa: BLE001 - never into cffi, which would print it
    _fail_every_call(error)
"""


def _c_string(text: str) -> str:
    """``text`` as a C string literal (UTF-8; anything but plain ASCII escaped)."""
    body = "".join(
        chr(b) if 32 <= b < 127 and chr(b) not in '"\\?' else f"\\{b:03o}"
        for b in text.encode("utf-8")
    )
    return f'"{body}"'


def search_path() -> tuple[str, ...]:
    """Where the embedded interpreter finds Omega and its dependencies: Omega's own root
    (a source checkout on PYTHONPATH, or site-packages), then this Python's
    site-packages."""
    root = str(Path(omega.__file__).resolve().parent.parent)
    dirs = [root, *site.getsitepackages(), sysconfig.get_paths()["purelib"]]
    dirs.append(sysconfig.get_paths()["platlib"])
    unique = dict.fromkeys(d for d in dirs if Path(d).is_dir())
    for d in unique:
        if ":" in d:
            raise ConfigError(f"cannot embed a search path with ':' in it: {d}")
    return tuple(unique)


def find_libpython() -> Path:
    """This Python's shared library (libpython3.X.so…), or a ConfigError saying what to
    install."""
    version = (
        sysconfig.get_config_var("LDVERSION") or f"{sys.version_info[0]}.{sys.version_info[1]}"
    )
    names = [
        sysconfig.get_config_var("LDLIBRARY"),
        sysconfig.get_config_var("INSTSONAME"),
        f"libpython{version}.so",
        f"libpython{version}.so.1.0",
    ]
    multiarch = sysconfig.get_config_var("MULTIARCH") or ""
    dirs = [
        sysconfig.get_config_var("LIBDIR"),
        sysconfig.get_config_var("LIBPL"),
        str(Path(sys.base_prefix) / "lib"),
        str(Path("/usr/lib") / multiarch) if multiarch else None,
    ]
    for directory in filter(None, dirs):
        for name in filter(None, names):
            candidate: Path = Path(str(directory)) / str(name)
            if ".so" in name and candidate.is_file():
                return candidate.resolve()
    raise ConfigError(
        f"no shared libpython{version} for {sys.executable} (looked in "
        f"{', '.join(filter(None, dirs))}): the SDK embeds Python and needs it "
        f"(Debian: apt-get install libpython{version}-dev; pyenv: build with "
        "PYTHON_CONFIGURE_OPTS=--enable-shared)"
    )


def _check_toolchain() -> None:
    include = Path(sysconfig.get_paths()["include"])
    if not (include / "Python.h").is_file():
        raise ConfigError(
            f"Python's C headers are missing ({include / 'Python.h'}): install them "
            f"(Debian: apt-get install python{sys.version_info[0]}.{sys.version_info[1]}-dev)"
        )
    if shutil.which(os.environ.get("CC", "gcc")) is None:
        raise ConfigError("no C compiler (gcc, or $CC) on PATH: install gcc")


def build_sdk(out: Path) -> SdkBuild:
    """Build ``out/lib/libomega.so`` and ``out/include/omega.h``."""
    _check_toolchain()
    libpython = find_libpython()
    header = HEADER.read_text(encoding="utf-8")
    functions = api_functions(header)
    home, path = sys.base_prefix, search_path()
    for directory in (out / "lib", out / "include"):
        try:
            directory.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ConfigError(f"--out: cannot make {directory} ({exc.strerror})") from None
    with tempfile.TemporaryDirectory(prefix="omega-sdk-build-") as tmp:
        work = Path(tmp)
        link_dir = work / "link"  # -lpython3.X must find a file of that name
        link_dir.mkdir()
        version = f"{sys.version_info[0]}.{sys.version_info[1]}{getattr(sys, 'abiflags', '')}"
        (link_dir / f"libpython{version}.so").symlink_to(libpython)
        preamble = "\n".join(
            [
                "#define OMEGA_BUILDING 1",
                '#include "omega.h"',
                f"static const char omega__build_home[] = {_c_string(home)};",
                f"static const char omega__build_path[] = {_c_string(':'.join(path))};",
                (SOURCES / "runtime.c").read_text(encoding="utf-8"),
                _wrappers(functions),
            ]
        )
        _compile(header, functions, preamble, work, link_dir, libpython.parent)
        shutil.copyfile(work / LIBRARY, out / "lib" / LIBRARY)
    shutil.copyfile(HEADER, out / "include" / "omega.h")
    return SdkBuild(out, out / "lib" / LIBRARY, out / "include" / "omega.h", home, path, libpython)


def _compile(
    header: str,
    functions: Sequence[Function],
    preamble: str,
    work: Path,
    link_dir: Path,
    rpath: Path,
) -> None:
    import cffi

    ffi = cffi.FFI()
    ffi.embedding_api("")  # the exported functions are the wrappers, in the preamble
    ffi.cdef(cffi_declarations(header))
    ffi.embedding_init_code(_init_code(functions))
    ffi.set_source(
        MODULE,
        preamble,
        include_dirs=[str(SOURCES)],
        library_dirs=[str(link_dir)],
        extra_compile_args=["-fvisibility=hidden", "-O2", "-Wno-format-truncation"],
        extra_link_args=[f"-Wl,-rpath,{rpath}", f"-Wl,-soname,{LIBRARY}", "-pthread"],
    )
    try:
        with warnings.catch_warnings():  # setuptools' distutils shim warns as it loads
            warnings.simplefilter("ignore", DeprecationWarning)
            ffi.compile(tmpdir=str(work), target=LIBRARY, verbose=False)
    except Exception as exc:  # cffi's VerificationError and distutils' errors alike
        raise ConfigError(f"building {LIBRARY} failed: {exc}") from None


def compile_program(
    source: Path, output: Path, sdk: Path, *, flags: Sequence[str] = ("-O2",)
) -> Path:
    """Compile one C file against the SDK in ``sdk`` (``build_sdk``'s ``out``): C99,
    every warning an error, linked with -lomega and -pthread, the library found at run
    time through an rpath."""
    command = [
        os.environ.get("CC", "gcc"),
        "-std=c99",
        "-Wall",
        "-Wextra",
        "-Werror",
        *flags,
        f"-I{sdk / 'include'}",
        str(source),
        "-o",
        str(output),
        f"-L{sdk / 'lib'}",
        "-lomega",
        f"-Wl,-rpath,{sdk / 'lib'}",
        "-pthread",
    ]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise ConfigError(f"compiling {source} failed:\n{done.stderr.strip()}")
    return output
