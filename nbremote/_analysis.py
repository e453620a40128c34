"""Static analysis of a ``%%remote`` cell: the notebook names it reads and writes.

The client ships a cell's inputs to the runner and brings its outputs back, so it must know
them before the cell runs. This module works them out from the source alone, with the stdlib
:mod:`ast` module and a small scope model:

* Top-level statements are followed in order (flow-sensitive): a load is a *read* unless
  earlier code surely bound the name. Each block of an ``if``/``for``/``while``/``try``/
  ``match`` statement, a ``with`` body, and the operands that ``and``/``or`` and conditional
  expressions may skip are branches that may not run, or may stop half-way: a binding in one
  is sure until the branch ends, but not after it, nor in the statement's other branches. A
  ``try``'s ``finally`` always runs.
* Function, lambda and comprehension scopes are flow-insensitive, like Python's compiler: a
  name bound anywhere in one is local to all of it. A free name in a function body is a read
  unless the cell surely bound it before the ``def``, or it is the def's own name: the body
  runs later, after the ``def`` bound it, so a binding after the ``def`` does not count.
* Class bodies run at once, so they are followed in order like the top level; methods and
  comprehensions do not see class-body names.

Where it must guess, it guesses towards more reads: a needless read costs a namespace lookup
on the client, a missing one a ``NameError`` on the runner.
"""

from __future__ import annotations

import ast
import contextlib
import enum
import getopt
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

from IPython.utils.text import DollarFormatter

from ._ipython_syntax import ipython_call, parse_cell

__all__ = ["CellNames", "analyse_cell"]


@dataclass(frozen=True)
class CellNames:
    """What a cell reads from and writes to the notebook namespace.

    Attributes:
        reads: Free names loaded before the cell surely bound them, in first-appearance
            order. Builtins are included, as the caller filters against the namespace;
            ``get_ipython`` is not, as the runner has its own.
        binds: Names (re)bound at module level, in source order, including by a function or
            class body through ``global`` and by a walrus in a comprehension.
        deletes: Names removed by a module-level ``del``. The last module-level binding or
            ``del`` of a name in source order decides whether it is in ``binds`` or here,
            even inside a branch that may not run.
        mutates: Module-level names whose object is changed in place by an assignment or
            ``del`` through a subscript or attribute (``df.loc[0, "a"] = 1`` mutates ``df``).
            Method calls such as ``xs.append(1)`` cannot be seen and are not included.
        imports: Each name bound by a module-level import, mapped to the import statements
            that re-create it, one per line, in source order (``import a.b`` then
            ``import a.c`` gives ``"import a.b\\nimport a.c"``). ``from m import *`` is under
            ``"*"``. A later non-import binding or ``del`` of the name drops it from here.
    """

    reads: tuple[str, ...]
    binds: tuple[str, ...]
    deletes: tuple[str, ...]
    mutates: tuple[str, ...]
    imports: dict[str, str] = field(hash=False)


def analyse_cell(source: str) -> CellNames:
    """Find the notebook names a cell reads, binds, deletes, mutates and imports.

    IPython syntax (``%magic``, ``!cmd``, ``x = !cmd``, ``x?``) is first turned into Python by
    IPython's own input transformer. The code given to ``%time`` and ``%timeit`` is analysed
    too (``%timeit`` runs it inside a function, so its assignments bind nothing), and so are
    the ``{expression}`` and ``$name`` parts IPython expands in shell commands and other line
    magics. Other magics' arguments are opaque.

    Raises:
        SyntaxError: The cell is not valid Python, as raised by :func:`ast.parse` on the
            transformed cell; it is not wrapped, so the caller can report it as it is. Its
            line numbers are those IPython itself reports: the transformer keeps lines in
            place but drops leading blank lines. Errors that only the compiler finds
            (``return`` outside a function, a top-level ``await``, which IPython allows) do
            not raise here, nor do errors in the code given to ``%time``/``%timeit``, which
            IPython reports when the magic runs.

    Example:
        >>> names = analyse_cell("import numpy as np\\ny = np.sqrt(x)\\ncache[key] = y\\n")
        >>> names.reads, names.binds, names.mutates
        (('x', 'cache', 'key'), ('np', 'y'), ('cache',))
        >>> names.imports
        {'np': 'import numpy as np'}
    """
    analyser = _Analyser()
    analyser.visit(parse_cell(source))
    return analyser.result()


class _Kind(enum.Enum):
    LOAD = enum.auto()
    BIND = enum.auto()
    DEL = enum.auto()
    MUTATE = enum.auto()


_KIND_OF_CONTEXT: dict[type[ast.expr_context], _Kind] = {
    ast.Load: _Kind.LOAD,
    ast.Store: _Kind.BIND,
    ast.Del: _Kind.DEL,
}


class _Event(NamedTuple):
    kind: _Kind
    name: str
    deferred: bool = False  # happens when a function body runs, not where it is written


class _ScopeKind(enum.Enum):
    MODULE = enum.auto()
    CLASS = enum.auto()
    FUNCTION = enum.auto()  # also lambdas and the function %timeit wraps its code in
    COMPREHENSION = enum.auto()


@dataclass(eq=False)
class _Scope:
    kind: _ScopeKind
    parent: _Scope | None
    globals: set[str] = field(default_factory=set)
    # Module and class bodies: names surely bound so far, as their statements run in order.
    sure: set[str] = field(default_factory=set)
    # Function and comprehension scopes: held until the scope ends, because a name bound
    # anywhere in it is local everywhere in it.
    events: list[_Event] = field(default_factory=list)

    def enclosing(self) -> _Scope:
        """The scope that resolves this scope's free names: class bodies are skipped."""
        scope = self.parent
        while scope is not None and scope.kind is _ScopeKind.CLASS:
            scope = scope.parent
        assert scope is not None, "the module scope has no enclosing scope"
        return scope


class _Analyser(ast.NodeVisitor):
    """Visits a parsed cell once, in execution order, and collects a :class:`CellNames`."""

    def __init__(self) -> None:
        self._module = _Scope(_ScopeKind.MODULE, None)
        self._scope = self._module
        self._defining: str | None = None  # name of the top-level def or class being visited
        # Dicts used as ordered sets.
        self._reads: dict[str, None] = {}
        self._binds: dict[str, None] = {}
        self._deletes: dict[str, None] = {}
        self._mutates: dict[str, None] = {}
        self._imports: dict[str, list[str]] = {}

    def result(self) -> CellNames:
        return CellNames(
            reads=tuple(self._reads),
            binds=tuple(self._binds),
            deletes=tuple(self._deletes),
            mutates=tuple(self._mutates),
            imports={name: "\n".join(lines) for name, lines in self._imports.items()},
        )

    # -- recording name events ------------------------------------------------------------

    def _emit(self, kind: _Kind, name: str) -> None:
        """Record an event happening here, in the current scope."""
        self._record(self._scope, _Event(kind, name), direct=True)

    def _record(self, scope: _Scope, event: _Event, *, direct: bool) -> None:
        """Route an event to the scope that owns its name.

        ``direct`` is true when the event happens in ``scope``'s own code at the current point
        of execution, not in a nested scope that may run zero or many times, or later.
        """
        if scope.kind is _ScopeKind.MODULE:
            self._at_module(event, direct=direct)
        elif event.name in scope.globals:
            deferred = event.deferred or scope.kind is _ScopeKind.FUNCTION
            self._at_module(event._replace(deferred=deferred), direct=False)
        elif scope.kind is _ScopeKind.CLASS:
            self._at_class(scope, event)
        else:
            scope.events.append(event)

    def _at_class(self, scope: _Scope, event: _Event) -> None:
        if event.kind is _Kind.BIND:
            scope.sure.add(event.name)
        elif event.kind is _Kind.DEL:
            scope.sure.discard(event.name)
        elif event.name not in scope.sure:
            # A class body looks a name up in its own namespace, then in the enclosing ones.
            self._record(scope.enclosing(), event, direct=False)

    def _at_module(self, event: _Event, *, direct: bool) -> None:
        kind, name, deferred = event
        sure = self._module.sure
        if kind is _Kind.LOAD:
            if (
                name not in sure
                and name != "get_ipython"
                and not (deferred and name == self._defining)
            ):
                self._reads[name] = None
        elif kind is _Kind.MUTATE:
            self._mutates[name] = None
        elif kind is _Kind.BIND:
            self._binds[name] = None
            self._deletes.pop(name, None)
            if direct:
                self._imports.pop(name, None)
                sure.add(name)
        else:
            self._at_module(event._replace(kind=_Kind.LOAD), direct=direct)  # needs it to exist
            # A `del` through `global` in a function body may never run: only that read counts.
            if direct:
                sure.discard(name)
                self._binds.pop(name, None)
                self._imports.pop(name, None)
                self._deletes[name] = None

    # -- scopes and branches --------------------------------------------------------------

    @contextlib.contextmanager
    def _enter(self, kind: _ScopeKind) -> Iterator[None]:
        """Visit code in a new nested scope; on leaving, hand its free names outwards."""
        outer = self._scope
        scope = self._scope = _Scope(kind, outer)
        yield
        self._scope = outer
        # A class body resolved its events as it ran: it has none left here. A `nonlocal`
        # name is local to an enclosing function, never to the module: no need to track it.
        local = {e.name for e in scope.events if e.kind in (_Kind.BIND, _Kind.DEL)}
        deferred = kind is _ScopeKind.FUNCTION
        for event in scope.events:
            if event.name not in local:
                event = event._replace(deferred=event.deferred or deferred)
                self._record(scope.enclosing(), event, direct=False)

    def _visit_branches(self, *blocks: Sequence[ast.AST]) -> None:
        """Visit blocks of the current scope that each may not run, or may stop half-way."""
        sure = self._scope.sure
        before = set(sure)
        for block in blocks:
            self._visit_all(block)
            sure.intersection_update(before)  # a block's bindings are sure only inside it,
            before = set(sure)  # but what it deleted stays unsure from then on

    @contextlib.contextmanager
    def _naming(self, name: str) -> Iterator[None]:
        """Visit a def or class statement that binds ``name`` once it has run."""
        outer = self._defining
        if self._scope is self._module:
            self._defining = name
        yield
        self._defining = outer

    def _visit_all(self, nodes: Iterable[ast.AST]) -> None:
        for node in nodes:
            self.visit(node)

    # -- names ----------------------------------------------------------------------------

    def visit_Name(self, node: ast.Name) -> None:
        self._emit(_KIND_OF_CONTEXT[type(node.ctx)], node.id)

    def visit_Attribute(self, node: ast.Attribute | ast.Subscript) -> None:
        if not isinstance(node.ctx, ast.Load):  # x.a = v, x[k] += v, del x[k]: x changes
            root = node.value
            while isinstance(root, (ast.Attribute, ast.Subscript)):
                root = root.value
            if isinstance(root, ast.Name):
                self._emit(_Kind.MUTATE, root.id)
        self.generic_visit(node)

    visit_Subscript = visit_Attribute

    def visit_NamedExpr(self, node: ast.NamedExpr) -> None:
        self.visit(node.value)
        # Inside a comprehension the walrus binds in the enclosing function or module, on
        # each of zero or more iterations.
        scope = self._scope
        while scope.kind is _ScopeKind.COMPREHENSION:
            scope = scope.enclosing()
        self._record(scope, _Event(_Kind.BIND, node.target.id), direct=scope is self._scope)

    def visit_Global(self, node: ast.Global) -> None:
        self._scope.globals.update(node.names)

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            # `import a.b` binds `a`.
            self._bind_import(alias.asname or alias.name.partition(".")[0], ast.Import([alias]))

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        for alias in node.names:
            statement = ast.ImportFrom(node.module, [alias], node.level)
            if alias.name == "*":
                self._imports.setdefault("*", []).append(ast.unparse(statement))
            else:
                self._bind_import(alias.asname or alias.name, statement)

    def _bind_import(self, name: str, statement: ast.Import | ast.ImportFrom) -> None:
        earlier = self._imports.get(name, [])
        self._emit(_Kind.BIND, name)  # forgets the name's earlier imports ...
        if self._scope is self._module:
            # ... but running them all again in order re-creates the name.
            line = ast.unparse(statement)
            self._imports[name] = earlier if line in earlier else [*earlier, line]

    # -- statements whose parts run out of source order, or may not run -------------------

    def visit_Assign(self, node: ast.Assign) -> None:
        self.visit(node.value)
        self._visit_all(node.targets)

    def visit_AugAssign(self, node: ast.AugAssign) -> None:
        if isinstance(node.target, ast.Name):  # x += v loads x, then binds it
            self._emit(_Kind.LOAD, node.target.id)
            self.visit(node.value)
            self._emit(_Kind.BIND, node.target.id)
        else:
            self.visit(node.target)
            self.visit(node.value)

    def visit_AnnAssign(self, node: ast.AnnAssign) -> None:
        if node.value is not None:
            self.visit(node.value)
        if self._scope.kind is not _ScopeKind.FUNCTION:  # function bodies skip annotations
            self.visit(node.annotation)
        if node.value is not None:  # `x: int` alone binds nothing
            self.visit(node.target)

    def visit_For(self, node: ast.For | ast.AsyncFor) -> None:
        self.visit(node.iter)
        self._visit_branches([node.target, *node.body], node.orelse)

    visit_AsyncFor = visit_For

    def visit_While(self, node: ast.While | ast.If) -> None:
        self.visit(node.test)
        self._visit_branches(node.body, node.orelse)

    visit_If = visit_While

    def visit_With(self, node: ast.With | ast.AsyncWith) -> None:
        self._visit_all(node.items)  # `as` targets are bound before the body starts
        self._visit_branches(node.body)  # a context manager can swallow an exception

    visit_AsyncWith = visit_With

    def visit_Try(self, node: ast.Try | ast.TryStar) -> None:
        # An exception can stop the body anywhere; `else` is a branch of its own too, which is
        # cautious: it runs only after the whole body.
        self._visit_branches(node.body, *([handler] for handler in node.handlers), node.orelse)
        self._visit_all(node.finalbody)

    visit_TryStar = visit_Try

    def visit_ExceptHandler(self, node: ast.ExceptHandler) -> None:
        if node.type is not None:
            self.visit(node.type)
        if node.name is not None:
            self._emit(_Kind.BIND, node.name)
        self._visit_all(node.body)

    def visit_Match(self, node: ast.Match) -> None:
        self.visit(node.subject)
        self._visit_branches(*([case] for case in node.cases))

    def visit_MatchAs(self, node: ast.MatchAs | ast.MatchStar | ast.MatchMapping) -> None:
        self.generic_visit(node)
        name = node.rest if isinstance(node, ast.MatchMapping) else node.name
        if name is not None:
            self._emit(_Kind.BIND, name)

    visit_MatchStar = visit_MatchMapping = visit_MatchAs

    def visit_BoolOp(self, node: ast.BoolOp) -> None:
        self.visit(node.values[0])
        self._visit_branches(node.values[1:])  # `and`/`or` may stop before the other operands

    def visit_IfExp(self, node: ast.IfExp) -> None:
        self.visit(node.test)
        self._visit_branches([node.body], [node.orelse])

    # -- nested scopes --------------------------------------------------------------------

    def visit_FunctionDef(self, node: ast.FunctionDef | ast.AsyncFunctionDef) -> None:
        # Decorators, defaults and annotations are evaluated by the def statement itself.
        self._visit_all(node.decorator_list)
        self._visit_signature(node.args)
        if node.returns is not None:
            self.visit(node.returns)
        with self._naming(node.name), self._enter(_ScopeKind.FUNCTION):
            self._bind_parameters(node.args)
            self._visit_all(node.body)
        self._emit(_Kind.BIND, node.name)

    visit_AsyncFunctionDef = visit_FunctionDef

    def visit_Lambda(self, node: ast.Lambda) -> None:
        self._visit_signature(node.args)
        with self._enter(_ScopeKind.FUNCTION):
            self._bind_parameters(node.args)
            self.visit(node.body)

    def visit_ClassDef(self, node: ast.ClassDef) -> None:
        self._visit_all([*node.decorator_list, *node.bases, *node.keywords])
        with self._naming(node.name), self._enter(_ScopeKind.CLASS):
            self._visit_all(node.body)
        self._emit(_Kind.BIND, node.name)

    def visit_ListComp(self, node: ast.ListComp | ast.SetComp | ast.GeneratorExp) -> None:
        self._visit_comprehension(node.generators, node.elt)

    visit_SetComp = visit_GeneratorExp = visit_ListComp

    def visit_DictComp(self, node: ast.DictComp) -> None:
        self._visit_comprehension(node.generators, node.key, node.value)

    def _visit_comprehension(self, generators: list[ast.comprehension], *results: ast.expr) -> None:
        self.visit(generators[0].iter)  # evaluated in the enclosing scope
        with self._enter(_ScopeKind.COMPREHENSION):
            for index, generator in enumerate(generators):
                if index:
                    self.visit(generator.iter)
                self.visit(generator.target)
                self._visit_all(generator.ifs)
            self._visit_all(results)

    def _visit_signature(self, arguments: ast.arguments) -> None:
        self._visit_all([*arguments.defaults, *filter(None, arguments.kw_defaults)])
        self._visit_all(arg.annotation for arg in _parameters(arguments) if arg.annotation)

    def _bind_parameters(self, arguments: ast.arguments) -> None:
        for arg in _parameters(arguments):
            self._emit(_Kind.BIND, arg.arg)

    # -- IPython ----------------------------------------------------------------------------

    def visit_Call(self, node: ast.Call) -> None:
        self.generic_visit(node)
        match ipython_call(node):
            case ("run_line_magic", ["time" | "timeit" as magic, line]):
                self._visit_timed_code(magic, line)
            case ("run_line_magic", [_, text]) | ("system" | "getoutput", [text]):
                self._visit_expansions(text)

    def _visit_timed_code(self, magic: str, line: str) -> None:
        """Visit the statement of ``%time`` or ``%timeit``, after their options."""
        options = ("n:r:tcp:qov:", []) if magic == "timeit" else ("", ["no-raise-error"])
        try:
            # IPython also splits the line into words and joins what follows the options.
            _, words = getopt.getopt(line.split(), *options)
            body = parse_cell(" ".join(words)).body
        except (getopt.GetoptError, SyntaxError):
            return  # IPython reports the bad line when the magic runs
        if magic == "time":  # runs the code right here, in the notebook namespace
            self._visit_all(body)
            return
        with self._enter(_ScopeKind.FUNCTION):  # %timeit runs it in a function
            self._visit_all(body)

    def _visit_expansions(self, text: str) -> None:
        """Visit the ``{expression}`` and ``$name`` parts IPython expands in ``text``."""
        try:
            sources = [source for _, source, _, _ in DollarFormatter().parse(text) if source]
        except ValueError:  # unbalanced braces: IPython leaves the text as it is
            return
        for source in sources:
            try:
                expression = ast.parse(source.strip(), mode="eval")
            except SyntaxError:  # not Python, such as awk's `{print $1}`: no expansion
                continue
            self.visit(expression.body)


def _parameters(arguments: ast.arguments) -> list[ast.arg]:
    return [
        *arguments.posonlyargs,
        *arguments.args,
        *filter(None, [arguments.vararg]),
        *arguments.kwonlyargs,
        *filter(None, [arguments.kwarg]),
    ]
