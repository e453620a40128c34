"""Tests for nbremote._analysis: which notebook names a cell reads and writes."""

from __future__ import annotations

import dataclasses
import doctest
import textwrap

import pytest

from nbremote import _analysis
from nbremote._analysis import CellNames, analyse_cell


def names(
    reads: tuple[str, ...] = (),
    binds: tuple[str, ...] = (),
    deletes: tuple[str, ...] = (),
    mutates: tuple[str, ...] = (),
    imports: dict[str, str] | None = None,
) -> CellNames:
    """The expected analysis, with everything not given empty."""
    return CellNames(reads, binds, deletes, mutates, imports or {})


def case(source: str, expected: CellNames, id: str) -> object:
    """A table row: the cell source (dedented), what it should analyse to, and its test id."""
    return pytest.param(textwrap.dedent(source), expected, id=id)


def check(source: str, expected: CellNames) -> None:
    assert analyse_cell(source) == expected


PLAIN = [
    case("y = x", names(reads=("x",), binds=("y",)), "read-and-bind"),
    case("x = 1\ny = x", names(binds=("x", "y")), "bound-earlier-is-no-read"),
    case("print(a, b, a)", names(reads=("print", "a", "b")), "first-appearance-no-duplicates"),
    case("_tmp = __secret", names(reads=("__secret",), binds=("_tmp",)), "underscore-names-kept"),
    case("a, (b, *c) = d", names(reads=("d",), binds=("a", "b", "c")), "unpacking"),
    case("x = y = z", names(reads=("z",), binds=("x", "y")), "chained-assignment"),
    case("x: int", names(reads=("int",)), "annotation-alone-binds-nothing"),
    case("x: int = y", names(reads=("y", "int"), binds=("x",)), "annotated-assignment"),
    case("x = 1\nx = 2\ny = 3\nx = 4", names(binds=("x", "y")), "binds-in-first-order"),
    case("get_ipython().run_cell('1')", names(), "get_ipython-is-no-read"),
]


@pytest.mark.parametrize(("source", "expected"), PLAIN)
def test_plain_reads_and_binds(source: str, expected: CellNames) -> None:
    check(source, expected)


SAME_STATEMENT = [
    case("x = x + 1", names(reads=("x",), binds=("x",)), "rebind-from-itself"),
    case("x = f(x)\ny = x", names(reads=("f", "x"), binds=("x", "y")), "then-bound"),
    case("for i in i:\n    pass", names(reads=("i",), binds=("i",)), "for-over-itself"),
    case(
        "y = [x] if (x := g()) else []",
        names(reads=("g",), binds=("x", "y")),
        "walrus-in-test-runs-first",
    ),
    case("x += 1", names(reads=("x",), binds=("x",)), "aug-assign-reads-and-binds"),
    case("x = 0\nx += 1", names(binds=("x",)), "aug-assign-after-bind"),
    case("x[0] += 1", names(reads=("x",), mutates=("x",)), "aug-assign-item-mutates"),
    case(
        "x.count += step",
        names(reads=("x", "step"), mutates=("x",)),
        "aug-assign-attribute-mutates",
    ),
]


@pytest.mark.parametrize(("source", "expected"), SAME_STATEMENT)
def test_reads_before_binding_in_the_same_statement(source: str, expected: CellNames) -> None:
    check(source, expected)


MUTATIONS = [
    case("x[k] = v", names(reads=("v", "x", "k"), mutates=("x",)), "item-assignment"),
    case("x.a = 1", names(reads=("x",), mutates=("x",)), "attribute-assignment"),
    case('df.loc[0, "a"] = 1', names(reads=("df",), mutates=("df",)), "df-loc"),
    case(
        "model.layers[0].weight.data[:] = w",
        names(reads=("w", "model"), mutates=("model",)),
        "deep-chain",
    ),
    case("del x[k]", names(reads=("x", "k"), mutates=("x",)), "del-item"),
    case("del x.a", names(reads=("x",), mutates=("x",)), "del-attribute"),
    case("f(x).a = 1", names(reads=("f", "x")), "call-result-is-not-a-name"),
    case("xs.append(1)", names(reads=("xs",)), "method-calls-unseen"),
    case("x = {}\nx['k'] = 1", names(binds=("x",), mutates=("x",)), "bound-then-mutated"),
    case(
        "def f():\n    cache[k] = 1",
        names(reads=("cache", "k"), binds=("f",), mutates=("cache",)),
        "function-mutates-global",
    ),
    case(
        "def f():\n    local = {}\n    local['k'] = 1",
        names(binds=("f",)),
        "function-mutates-local",
    ),
    case(
        "class A:\n    d = {}\n    d['k'] = 1",
        names(binds=("A",)),
        "class-mutates-class-local",
    ),
]


@pytest.mark.parametrize(("source", "expected"), MUTATIONS)
def test_mutations(source: str, expected: CellNames) -> None:
    check(source, expected)


DELETIONS = [
    case("del x", names(reads=("x",), deletes=("x",)), "del-needs-the-name"),
    case("x = 1\ndel x", names(deletes=("x",)), "bound-then-deleted"),
    case("del x\nx = 2", names(reads=("x",), binds=("x",)), "deleted-then-rebound"),
    case("x = 1\ndel x\nprint(x)", names(reads=("print", "x"), deletes=("x",)), "read-after-del"),
    case("del a, b", names(reads=("a", "b"), deletes=("a", "b")), "several"),
    case("import os\ndel os", names(deletes=("os",)), "deleted-import"),
    case(
        """\
        x = 1
        if c:
            del x
        y = x
        """,
        names(reads=("c", "x"), binds=("y",), deletes=("x",)),
        "del-in-branch-makes-unsure",
    ),
    case(
        "def f():\n    global g\n    del g",
        names(reads=("g",), binds=("f",)),
        "del-through-global-only-reads",
    ),
    case("def f():\n    x = 1\n    del x", names(binds=("f",)), "del-of-local"),
]


@pytest.mark.parametrize(("source", "expected"), DELETIONS)
def test_deletions(source: str, expected: CellNames) -> None:
    check(source, expected)


COMPREHENSIONS = [
    case("[x for x in xs]", names(reads=("xs",)), "target-is-local"),
    case("[x for x in xs]\nprint(x)", names(reads=("xs", "print", "x")), "target-does-not-leak"),
    case("[y for x in x for y in x]", names(reads=("x",)), "first-iterable-outside"),
    case("{k: v for k, v in d.items() if v > lim}", names(reads=("d", "lim")), "dict-with-filter"),
    case("(a * b for a in r1 for b in r2)", names(reads=("r1", "r2")), "generator"),
    case("{s.lower() for s in words}", names(reads=("words",)), "set"),
    case(
        "[last := v for v in data]\nprint(last)",
        names(reads=("data", "print", "last"), binds=("last",)),
        "walrus-leaks-but-may-not-run",
    ),
    case(
        "total = sum(n for n in nums if (hit := n) > t)",
        names(reads=("sum", "nums", "t"), binds=("hit", "total")),
        "walrus-in-filter",
    ),
    case(
        "def f():\n    [(m := v) for v in vs]\n    return m",
        names(reads=("vs",), binds=("f",)),
        "walrus-binds-in-function",
    ),
]


@pytest.mark.parametrize(("source", "expected"), COMPREHENSIONS)
def test_comprehensions(source: str, expected: CellNames) -> None:
    check(source, expected)


FUNCTIONS = [
    case("def f():\n    return a + b", names(reads=("a", "b"), binds=("f",)), "free-names"),
    case("a = 1\ndef f():\n    return a", names(binds=("a", "f")), "bound-before-def"),
    case("def f():\n    return a\na = 1", names(reads=("a",), binds=("f", "a")), "bound-after"),
    case(
        "if c:\n    a = 1\ndef f():\n    return a",
        names(reads=("c", "a"), binds=("a", "f")),
        "bound-in-branch-before-def",
    ),
    case("def f(x):\n    y = x\n    return y", names(binds=("f",)), "parameters-and-locals"),
    case(
        "def f():\n    print(x)\n    x = 1",
        names(reads=("print",), binds=("f",)),
        "local-anywhere-is-local-everywhere",
    ),
    case(
        "def fact(n):\n    return 1 if n < 2 else n * fact(n - 1)",
        names(binds=("fact",)),
        "recursion-is-no-read",
    ),
    case(
        "def f():\n    return g()\ndef g():\n    return 1",
        names(reads=("g",), binds=("f", "g")),
        "later-def-is-a-read",
    ),
    case(
        """\
        def outer():
            def inner():
                return outer, inner, z
            return inner
        """,
        names(reads=("z",), binds=("outer",)),
        "nested-functions",
    ),
    case(
        "async def f():\n    async for r in q:\n        await r",
        names(reads=("q",), binds=("f",)),
        "async-def",
    ),
    case(
        "def f():\n    x: Unevaluated = 1",
        names(binds=("f",)),
        "local-annotations-not-evaluated",
    ),
]


@pytest.mark.parametrize(("source", "expected"), FUNCTIONS)
def test_functions_reading_globals(source: str, expected: CellNames) -> None:
    check(source, expected)


GLOBAL_AND_NONLOCAL = [
    case("def f():\n    global y\n    y = 1", names(binds=("y", "f")), "global-bind"),
    case(
        "def f():\n    global y\n    y = y + 1",
        names(reads=("y",), binds=("y", "f")),
        "global-read-and-bind",
    ),
    case(
        "y = 0\ndef f():\n    global y\n    y += 1",
        names(binds=("y", "f")),
        "global-bound-before-def",
    ),
    case(
        "def f():\n    global y\n    y = 1\nprint(y)",
        names(reads=("print", "y"), binds=("y", "f")),
        "global-bind-is-not-sure",
    ),
    case("class C:\n    global g\n    g = 1", names(binds=("g", "C")), "global-in-class"),
    case("global x\nx = 1\ny = x", names(binds=("x", "y")), "module-level-global-is-a-no-op"),
    case(
        """\
        def outer():
            n = 0
            def inc():
                nonlocal n
                n += step
                return n
            return inc
        """,
        names(reads=("step",), binds=("outer",)),
        "nonlocal",
    ),
    case(
        "def outer(a):\n    return lambda: a + b",
        names(reads=("b",), binds=("outer",)),
        "closure-over-parameter",
    ),
]


@pytest.mark.parametrize(("source", "expected"), GLOBAL_AND_NONLOCAL)
def test_global_and_nonlocal(source: str, expected: CellNames) -> None:
    check(source, expected)


CLASSES = [
    case(
        "class A(Base, metaclass=Meta):\n    x = 1\n    y = x + z",
        names(reads=("Base", "Meta", "z"), binds=("A",)),
        "body-reads-and-locals",
    ),
    case(
        "class A:\n    x = 1\n    def m(self):\n        return x",
        names(reads=("x",), binds=("A",)),
        "methods-do-not-see-class-names",
    ),
    case(
        "class A:\n    def m(self):\n        return A()",
        names(binds=("A",)),
        "method-uses-own-class",
    ),
    case("class A:\n    x = A", names(reads=("A",), binds=("A",)), "body-runs-before-bind"),
    case(
        "class A:\n    size = 3\n    cells = [size for _ in range(n)]",
        names(reads=("range", "n", "size"), binds=("A",)),
        "comprehension-does-not-see-class-names",
    ),
    case(
        "class A:\n    if c:\n        y = 1\n    z = y",
        names(reads=("c", "y"), binds=("A",)),
        "branch-in-class-body",
    ),
    case(
        "class A:\n    x: int = 0\n    y: Sequence",
        names(reads=("int", "Sequence"), binds=("A",)),
        "class-annotations-evaluated",
    ),
    case("x = 1\nclass A:\n    y = x", names(binds=("x", "A")), "module-name-bound-earlier"),
]


@pytest.mark.parametrize(("source", "expected"), CLASSES)
def test_classes(source: str, expected: CellNames) -> None:
    check(source, expected)


LAMBDAS_DECORATORS_DEFAULTS = [
    case(
        "f = lambda x, *a, k=d, **kw: x + a + k + kw + g",
        names(reads=("d", "g"), binds=("f",)),
        "lambda",
    ),
    case("f = lambda: f", names(reads=("f",), binds=("f",)), "lambda-body-needs-earlier-bind"),
    case(
        "key = 1\nsorted(xs, key=lambda v: v[key])",
        names(reads=("sorted", "xs"), binds=("key",)),
        "lambda-sees-earlier-bind",
    ),
    case(
        "@cache\ndef f(x=default, *, y: Y = 2) -> R:\n    return x",
        names(reads=("cache", "default", "Y", "R"), binds=("f",)),
        "decorator-default-annotations",
    ),
    case(
        "def f(a, /, b=lo, *args: A, c=hi, **kw: K):\n    pass",
        names(reads=("lo", "hi", "A", "K"), binds=("f",)),
        "all-parameter-kinds",
    ),
    case("def f(x=f):\n    pass", names(reads=("f",), binds=("f",)), "default-before-bind"),
    case(
        "@register(name)\nclass A:\n    pass",
        names(reads=("register", "name"), binds=("A",)),
        "class-decorator",
    ),
]


@pytest.mark.parametrize(("source", "expected"), LAMBDAS_DECORATORS_DEFAULTS)
def test_lambdas_decorators_and_defaults(source: str, expected: CellNames) -> None:
    check(source, expected)


IMPORTS = [
    case(
        "import numpy as np",
        names(binds=("np",), imports={"np": "import numpy as np"}),
        "import-as",
    ),
    case("import os.path", names(binds=("os",), imports={"os": "import os.path"}), "dotted"),
    case(
        "import os, sys",
        names(binds=("os", "sys"), imports={"os": "import os", "sys": "import sys"}),
        "several",
    ),
    case(
        "from a.b import c as d, e",
        names(
            binds=("d", "e"),
            imports={"d": "from a.b import c as d", "e": "from a.b import e"},
        ),
        "from-import",
    ),
    case("from . import x", names(binds=("x",), imports={"x": "from . import x"}), "relative"),
    case(
        "from ..pkg.mod import y",
        names(binds=("y",), imports={"y": "from ..pkg.mod import y"}),
        "relative-parent",
    ),
    case("from math import *", names(imports={"*": "from math import *"}), "star"),
    case(
        "from math import *\nfrom os.path import *",
        names(imports={"*": "from math import *\nfrom os.path import *"}),
        "two-stars",
    ),
    case(
        "import xml.dom\nimport xml.etree\nimport xml.dom",
        names(binds=("xml",), imports={"xml": "import xml.dom\nimport xml.etree"}),
        "same-root-accumulates",
    ),
    case("import numpy as np\nnp = np.float32", names(binds=("np",)), "rebound-by-assignment"),
    case(
        "np = None\nimport numpy as np",
        names(binds=("np",), imports={"np": "import numpy as np"}),
        "assignment-then-import",
    ),
    case(
        "import numpy as np\nx = np.zeros(3)",
        names(binds=("np", "x"), imports={"np": "import numpy as np"}),
        "import-used-later-is-no-read",
    ),
    case("def f():\n    import json\n    return json", names(binds=("f",)), "local-import"),
    case(
        """\
        try:
            import ujson as json
        except ImportError:
            import json
        """,
        names(
            reads=("ImportError",),
            binds=("json",),
            imports={"json": "import ujson as json\nimport json"},
        ),
        "fallback-import",
    ),
]


@pytest.mark.parametrize(("source", "expected"), IMPORTS)
def test_imports(source: str, expected: CellNames) -> None:
    check(source, expected)


BRANCHES = [
    case(
        "if c:\n    x = 1\nprint(x)",
        names(reads=("c", "print", "x"), binds=("x",)),
        "if-bound-then-read",
    ),
    case("if c:\n    x = 1\n    y = x", names(reads=("c",), binds=("x", "y")), "same-branch"),
    case(
        "if c:\n    x = 1\nelse:\n    y = x",
        names(reads=("c", "x"), binds=("x", "y")),
        "other-branch",
    ),
    case(
        "if c:\n    x = 1\nelse:\n    x = 2\nprint(x)",
        names(reads=("c", "print", "x"), binds=("x",)),
        "both-branches-still-unsure",
    ),
    case(
        "for i in range(3):\n    total = i\nprint(i, total)",
        names(reads=("range", "print", "i", "total"), binds=("i", "total")),
        "for-target-and-body",
    ),
    case(
        "for i in xs:\n    pass\nelse:\n    j = i",
        names(reads=("xs", "i"), binds=("i", "j")),
        "for-else",
    ),
    case("while n > 0:\n    n -= 1", names(reads=("n",), binds=("n",)), "while"),
    case(
        "while x:\n    y = 1\nelse:\n    z = y",
        names(reads=("x", "y"), binds=("y", "z")),
        "while-else",
    ),
    case(
        "with open(p) as fh, lock:\n    data = fh.read()\nprint(fh, data)",
        names(reads=("open", "p", "lock", "print", "data"), binds=("fh", "data")),
        "with-target-sure-body-not",
    ),
    case(
        """\
        try:
            x = f()
        except (KeyError, E) as e:
            log(e, x)
        else:
            y = x
        finally:
            z = 1
        print(z)
        """,
        names(reads=("f", "KeyError", "E", "log", "x", "print"), binds=("x", "e", "y", "z")),
        "try-except-else-finally",
    ),
    case(
        "try:\n    pass\nexcept* ValueError as group:\n    handle(group)",
        names(reads=("ValueError", "handle"), binds=("group",)),
        "try-star",
    ),
    case("async with s as c:\n    pass", names(reads=("s",), binds=("c",)), "async-with"),
    case("async for r in q:\n    pass", names(reads=("q",), binds=("r",)), "async-for"),
    case(
        "if (m := pat.match(s)) and (g := m.group(1)):\n    print(m, g)",
        names(reads=("pat", "s", "print", "g"), binds=("m", "g")),
        "short-circuit-walrus",
    ),
    case(
        "x = a if c else (b := 1)\nprint(b)",
        names(reads=("c", "a", "print", "b"), binds=("b", "x")),
        "conditional-expression-walrus",
    ),
    case(
        """\
        match cmd:
            case ["go", direction]:
                move(direction)
            case {"k": v, **rest}:
                use(v, rest)
            case Point(x=0, y=yy) if yy > lim:
                pass
            case [first, *others] as whole:
                pass
            case Color.RED:
                pass
            case _:
                pass
        print(direction)
        """,
        names(
            reads=("cmd", "move", "use", "Point", "lim", "Color", "print", "direction"),
            binds=("direction", "v", "rest", "yy", "first", "others", "whole"),
        ),
        "match",
    ),
]


@pytest.mark.parametrize(("source", "expected"), BRANCHES)
def test_branches_and_compound_statement_targets(source: str, expected: CellNames) -> None:
    check(source, expected)


IPYTHON = [
    case("%time y = x + 1", names(reads=("x",), binds=("y",)), "time-statement"),
    case("%time y = x + 1\nz = y", names(reads=("x",), binds=("y", "z")), "time-binds-surely"),
    case(
        "%time --no-raise-error w = v",
        names(reads=("v",), binds=("w",)),
        "time-option",
    ),
    case(
        "result = %time train(model)",
        names(reads=("train", "model"), binds=("result",)),
        "time-expression",
    ),
    case("%time y = (", names(), "bad-magic-code-left-to-ipython"),
    case("%timeit -n 10 -r 3 z = model(x)", names(reads=("model", "x")), "timeit-binds-nothing"),
    case("files = !ls\nprint(files)", names(reads=("print",), binds=("files",)), "getoutput"),
    case("!ls", names(), "system"),
    case("!pip install {pkg} $extra $$HOME", names(reads=("pkg", "extra")), "shell-expansion"),
    case("!awk '{print $1}' data.txt", names(), "shell-braces-not-python"),
    case("!echo {oops", names(), "shell-unbalanced-brace"),
    case("%cd {workdir}", names(reads=("workdir",)), "line-magic-expansion"),
    case("%matplotlib inline\nplt.plot(xs)", names(reads=("plt", "xs")), "plain-line-magic"),
    case("x?", names(), "help"),
    case(
        "if c:\n    %time y = 1\nprint(y)",
        names(reads=("c", "print", "y"), binds=("y",)),
        "magic-in-branch",
    ),
    case("def f():\n    !echo {arg}", names(reads=("arg",), binds=("f",)), "magic-in-function"),
]


@pytest.mark.parametrize(("source", "expected"), IPYTHON)
def test_ipython_syntax(source: str, expected: CellNames) -> None:
    check(source, expected)


@pytest.mark.parametrize(
    ("source", "lineno"),
    [
        pytest.param("x = (", 1, id="unclosed"),
        pytest.param("def f(:\n    pass", 1, id="bad-def"),
        pytest.param("for = 1", 1, id="keyword"),
        pytest.param("%time ok\n!ls\nx = = 1", 3, id="after-magics-same-line"),
    ],
)
def test_syntax_error_is_raised_unchanged(source: str, lineno: int) -> None:
    with pytest.raises(SyntaxError) as caught:
        analyse_cell(source)
    assert type(caught.value) in (SyntaxError, IndentationError)
    assert caught.value.lineno == lineno


DATA_SCIENCE_CELL = """\
import pandas as pd
import numpy as np
from sklearn.model_selection import train_test_split

df = pd.read_csv(DATA_PATH)
df["ratio"] = df.a / df.b
df.loc[df.ratio > 1, "flag"] = True
features = [c for c in df.columns if c not in EXCLUDE]
X_train, X_test, y_train, y_test = train_test_split(
    df[features], df.target, test_size=0.2, random_state=SEED
)

def score(model, X=X_test, y=y_test):
    return np.mean(model.predict(X) == y)

results = {name: score(m) for name, m in models.items()}
best = max(results, key=results.get)
%time final = models[best].fit(X_train, y_train)
del df
print(f"{best}: {results[best]:.3f}")
"""


def test_realistic_data_science_cell() -> None:
    check(
        DATA_SCIENCE_CELL,
        names(
            reads=("DATA_PATH", "EXCLUDE", "SEED", "models", "max", "print"),
            binds=(
                "pd",
                "np",
                "train_test_split",
                "features",
                "X_train",
                "X_test",
                "y_train",
                "y_test",
                "score",
                "results",
                "best",
                "final",
            ),
            deletes=("df",),
            mutates=("df",),
            imports={
                "pd": "import pandas as pd",
                "np": "import numpy as np",
                "train_test_split": "from sklearn.model_selection import train_test_split",
            },
        ),
    )


def test_result_is_frozen_and_hashable() -> None:
    result = analyse_cell("import os\nx = y")
    with pytest.raises(dataclasses.FrozenInstanceError):
        result.reads = ()  # type: ignore[misc]
    assert hash(result) == hash(analyse_cell("import os\nx = y"))


def test_docstring_example_holds() -> None:
    failed, attempted = doctest.testmod(_analysis)
    assert (failed, attempted) == (0, 3)
