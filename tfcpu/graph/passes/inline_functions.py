"""``inline_functions``: replace calls to library functions by the functions' bodies.

Matches: ``PartitionedCall`` / ``StatefulPartitionedCall`` nodes whose ``f`` names a function of
the graph's library, and nodes whose op *is* a library function (a direct call). Keras 3 runs
``Conv2D(groups>1)`` as a ``jit_compile`` function, so a frozen ConvNeXt or RegNetX keeps one
such call per grouped convolution, marked ``_XlaMustCompile`` / ``_noinline``: TensorFlow then
compiles them with the XLA JIT, INC never sees the convolution inside, and OpenVINO's converter
fails on them. The XLA/no-inline marks are dropped: inlining only changes where the ops live.

Rewrite, per call ``c`` of function ``f`` (repeated until no inlinable call is left, so calls
inside calls go too):

* every body node ``n`` becomes ``c/n`` (a fresh name if that is taken); its ``_Xla*`` and
  ``_noinline`` attributes are dropped, its colocation marks renamed (or dropped when they name
  a node outside the body);
* a body input ``arg`` (a function argument) becomes the call's input at that position;
  ``node:out_arg:k`` becomes ``c/node:j`` with ``j`` the flat output index (the sizes of the
  earlier output args come from the op's OpDef, or the callee's signature for a nested call);
* the call's control inputs go to every inlined node that reads nothing else inlined;
* consumers of ``c:i`` read the tensor ``f.ret[output_arg_i]`` names instead; consumers of
  ``^c`` (and a call that is a named output) keep a node named ``c``: a ``NoOp`` waiting on the
  results and the function's control outputs (an ``Identity`` of the only result when ``c`` is
  an output);
* functions that no node calls any more leave the library.

Maths: none; each output is computed by the same ops on the same values (a function call has
no semantics of its own beyond ordering, which the control edges keep).

Skips (reported): functional control flow (``If``, ``While``, ``Case``: their bodies run a
data-dependent number of times), calls to functions missing from the library, bodies whose
attributes are placeholders of a polymorphic function, a call that is a named output and
returns several tensors, and calls still left after 64 rounds (a recursive function).

Ensures: every node's inputs name nodes that exist.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from tfcpu.graph._graphdef import called_functions, parse_input, reachable_functions, set_inputs, unique_name
from tfcpu.graph.passes._base import Outcome, PassContext, Skip, register_pass

__all__ = ["CALL_OPS", "inline_calls", "inline_functions", "plain_ops", "remaining_calls"]

#: Ops that call the function named in their ``f`` attribute.
CALL_OPS = frozenset({"PartitionedCall", "StatefulPartitionedCall"})
#: Functional control flow: their functions run conditionally or repeatedly; never inlined here.
CONTROL_FLOW_OPS = frozenset({"If", "StatelessIf", "While", "StatelessWhile", "Case", "StatelessCase", "_If", "_While"})
_MAX_ROUNDS = 64
log = logging.getLogger(__name__)
_DROP_ATTR_PREFIXES = ("_Xla", "_noinline", "_XlaMustCompile")


def _callee(node: Any, library: dict[str, Any]) -> str | None:
    """The function ``node`` calls, when it is a call (not control flow); else None."""
    if node.op in CALL_OPS:
        return str(node.attr["f"].func.name)
    if node.op in library:
        return str(node.op)
    return None


def remaining_calls(graph_def: Any) -> list[str]:
    """Names of nodes that still call a function (calls and functional control flow)."""
    library = {f.signature.name for f in graph_def.library.function}
    return [n.name for n in graph_def.node if n.op in CALL_OPS or n.op in library or n.op in CONTROL_FLOW_OPS]


def _output_sizes(node: Any, library: dict[str, Any]) -> list[tuple[str, int]] | None:
    """``[(output_arg_name, count)]`` of a body node, or None when its op is unknown."""
    if node.op in library:
        return [(a.name, 1) for a in library[node.op].signature.output_arg]
    from tfcpu.graph.passes.strip_unknown_attrs import op_def

    definition = op_def(node.op)
    if definition is None:
        return None
    sizes: list[tuple[str, int]] = []
    for arg in definition.output_arg:
        if arg.number_attr:
            count = int(node.attr[arg.number_attr].i)
        elif arg.type_list_attr:
            count = len(node.attr[arg.type_list_attr].list.type)
        else:
            count = 1
        sizes.append((arg.name, count))
    return sizes


def _why_not(function: Any, call: Any, protected: frozenset[str]) -> str | None:
    """Why the call cannot be inlined, or None."""
    for body in function.node_def:
        for value in body.attr.values():
            if value.WhichOneof("value") == "placeholder":
                return f"the body of {function.signature.name} has attribute placeholders (a polymorphic function)"
    if call.name in protected and len(function.signature.output_arg) != 1:
        return "the call is a named output and returns several tensors"
    return None


@dataclass(frozen=True)
class _Inlined:
    """What replacing one call produced: its results, what a waiter must wait on, and whether
    something still refers to the call by control edge."""

    results: tuple[str, ...]
    waits: tuple[str, ...]
    control_consumers: bool


class _Body:
    """A function body about to be copied under a call: new names and tensor references."""

    def __init__(self, call: Any, function: Any, args: dict[str, str], names: set[str]) -> None:
        self.body = {n.name: n for n in function.node_def}
        self.args = args
        self.offsets: dict[str, dict[str, int]] = {}
        taken = set(names)
        self.rename: dict[str, str] = {}
        for name in self.body:
            self.rename[name] = unique_name(taken, f"{call.name}/{name}")
            taken.add(self.rename[name])

    def measure(self, library: dict[str, Any]) -> str | None:
        """Fill the output offsets of every body node; a reason when an op is unknown."""
        for name, node in self.body.items():
            sizes = _output_sizes(node, library)
            if sizes is None:
                return f"the body's op {node.op!r} is not registered"
            start = 0
            self.offsets[name] = {}
            for arg_name, count in sizes:
                self.offsets[name][arg_name] = start
                start += count
        return None

    def tensor(self, text: str) -> str | None:
        """A body reference (``arg``, ``node:out_arg:k``, ``^node``) as a graph input string."""
        if text.startswith("^"):
            return f"^{self.rename[text[1:]]}" if text[1:] in self.rename else None
        parts = text.split(":")
        if parts[0] in self.args and parts[0] not in self.body:
            return self.args[parts[0]] if len(parts) == 1 or parts[-1] == "0" else None
        if parts[0] not in self.body:
            return None
        flat = 0
        if len(parts) == 3 and parts[1] in self.offsets[parts[0]] and parts[2].isdigit():
            flat = self.offsets[parts[0]][parts[1]] + int(parts[2])
        elif len(parts) != 1:
            return None
        return self.rename[parts[0]] if flat == 0 else f"{self.rename[parts[0]]}:{flat}"

    def _relocate(self, node: Any) -> None:
        """Colocation marks (``_class: loc:@n``) follow the renamed body; marks on nodes that do not
        exist here (TensorFlow's own inlining left them) are dropped."""
        if "_class" not in node.attr:
            return
        marks = [m.decode() for m in node.attr["_class"].list.s]
        kept = [f"loc:@{self.rename[m[5:]]}" for m in marks if m.startswith("loc:@") and m[5:] in self.rename]
        del node.attr["_class"]
        if kept:
            node.attr["_class"].list.s.extend(m.encode() for m in kept)

    def copies(self, call: Any, controls: list[str]) -> list[Any] | str:
        """The body's nodes renamed and rewired (XLA marks dropped), or a reason."""
        inlined_names = set(self.rename.values())
        out = []
        for name, node in self.body.items():
            inlined = type(node)()
            inlined.CopyFrom(node)
            inlined.name = self.rename[name]
            for key in [k for k in inlined.attr if k.startswith(_DROP_ATTR_PREFIXES)]:
                del inlined.attr[key]
            self._relocate(inlined)
            if not inlined.device and call.device:
                inlined.device = call.device
            mapped = [self.tensor(t) for t in node.input]
            if None in mapped:
                return f"cannot resolve an input of {name!r} inside the function"
            texts = [t for t in mapped if t is not None]
            reads_inlined = any(parse_input(t).node in inlined_names for t in texts)
            set_inputs(inlined, texts if reads_inlined else [*texts, *controls])
            out.append(inlined)
        return out


def _rewire_consumers(graph_def: Any, call: Any, results: list[str]) -> bool:
    """Point readers of ``call:i`` at ``results[i]``; True when something waits on ``^call``."""
    control_consumers = False
    for node in graph_def.node:
        if node is call or not any(parse_input(t).node == call.name for t in node.input):
            continue
        new: list[str] = []
        for text in node.input:
            ref = parse_input(text)
            if ref.node != call.name or ref.control:
                control_consumers = control_consumers or ref.node == call.name
                new.append(text)
            else:
                new.append(results[ref.index])
        set_inputs(node, new)
    return control_consumers


def _inline_one(graph_def: Any, call: Any, function: Any, library: dict[str, Any], names: set[str]) -> _Inlined | str:
    """Inline ``call`` (in place, the call node itself stays); return a reason when it cannot be done.

    Every check runs before the graph is touched, so a reason leaves the graph as it was.
    """
    signature = function.signature
    data = [t for t in call.input if not t.startswith("^")]
    controls = [t for t in call.input if t.startswith("^")]
    if len(data) != len(signature.input_arg):
        return f"the call has {len(data)} inputs, {signature.name} takes {len(signature.input_arg)}"
    body = _Body(call, function, {a.name: data[i] for i, a in enumerate(signature.input_arg)}, names)
    problem = body.measure(library)
    if problem is not None:
        return problem
    new_nodes = body.copies(call, controls)
    if isinstance(new_nodes, str):
        return f"{new_nodes} ({signature.name})"
    results: list[str] = []
    for arg in signature.output_arg:
        ref = body.tensor(function.ret[arg.name]) if arg.name in function.ret else None
        if ref is None:
            return f"cannot resolve the result {arg.name!r} of {signature.name}"
        results.append(ref)
    waits = [f"^{body.rename[n]}" for n in function.control_ret.values() if n in body.rename]
    control_consumers = _rewire_consumers(graph_def, call, results)
    graph_def.node.extend(new_nodes)
    names.update(body.rename.values())
    return _Inlined(tuple(results), tuple(waits), control_consumers)


def _inputs_exist(graph_def: Any, ctx: PassContext) -> str | None:
    """Post-condition: every input names a node of the graph."""
    names = {n.name for n in graph_def.node}
    for node in graph_def.node:
        for text in node.input:
            if parse_input(text).node not in names:
                return f"{node.name} reads {text!r}, which does not exist"
    return None


@register_pass(
    "inline_functions", "inline calls to library functions (Keras' XLA grouped convolutions)", ensures=_inputs_exist
)
def inline_functions(graph_def: Any, ctx: PassContext) -> Outcome:
    out = Outcome()
    skipped: dict[str, str] = {}
    for _ in range(_MAX_ROUNDS):
        library = {f.signature.name: f for f in graph_def.library.function}
        names = {n.name for n in graph_def.node}
        calls = [n.name for n in graph_def.node if n.name not in skipped and _callee(n, library) is not None]
        if not calls:
            break
        for call_name in calls:
            call = next(n for n in graph_def.node if n.name == call_name)
            name = _callee(call, library)
            function = library.get(name or "")
            reason = (
                f"calls {name!r}, which the graph's library does not hold"
                if function is None
                else _why_not(function, call, ctx.protected) or _replace(graph_def, call, function, library, names, ctx)
            )
            if reason is not None:
                skipped[call_name] = reason
                continue
            out.changed.append(f"{call_name} ({name})")
    else:
        library = {f.signature.name: f for f in graph_def.library.function}
        for n in graph_def.node:
            if n.name not in skipped and _callee(n, library) is not None:
                skipped[n.name] = f"still a call after {_MAX_ROUNDS} rounds (a recursive function?)"
    for node in graph_def.node:
        if node.op in CONTROL_FLOW_OPS:
            skipped[node.name] = f"{node.op} is functional control flow (its bodies run conditionally or repeatedly)"
    for name, reason in skipped.items():
        out.skip(name, reason)
    if out.changed:
        _prune_library(graph_def)
    return out


def _replace(
    graph_def: Any, call: Any, function: Any, library: dict[str, Any], names: set[str], ctx: PassContext
) -> str | None:
    """Inline ``call`` and remove it, or leave a stand-in under its name; a reason when it was left alone."""
    done = _inline_one(graph_def, call, function, library, names)
    if isinstance(done, str):
        return done
    name, device = call.name, call.device
    for i, node in enumerate(graph_def.node):
        if node.name == name:
            del graph_def.node[i]
            break
    if name in ctx.protected or done.control_consumers:
        stand = graph_def.node.add()
        stand.name = name
        stand.device = device
        if name in ctx.protected:  # _why_not made sure there is exactly one result
            stand.op = "Identity"
            stand.attr["T"].type = function.signature.output_arg[0].type
            set_inputs(stand, [done.results[0], *done.waits])
        else:
            stand.op = "NoOp"
            set_inputs(stand, [f"^{parse_input(r).node}" for r in done.results] + list(done.waits))
    return None


def _prune_library(graph_def: Any) -> None:
    """Drop library functions no node (nor any kept function) refers to."""
    library = {f.signature.name: f for f in graph_def.library.function}
    keep = reachable_functions({f for node in graph_def.node for f in called_functions(node, library)}, library)
    functions = [f for f in graph_def.library.function if f.signature.name in keep]
    gradients = [g for g in graph_def.library.gradient if g.function_name in keep]
    del graph_def.library.function[:]
    graph_def.library.function.extend(functions)
    del graph_def.library.gradient[:]
    graph_def.library.gradient.extend(gradients)


def inline_calls(graph_def: Any, inputs: tuple[str, ...], outputs: tuple[str, ...]) -> tuple[Any, tuple[Skip, ...]]:
    """Load-time entry: ``graph_def`` with its calls inlined (a copy; the argument itself when it
    calls nothing), and the calls left in it with the reason."""
    if not remaining_calls(graph_def):
        return graph_def, ()
    from tfcpu.graph.passes import run_pass

    ctx = PassContext(
        inputs=tuple(parse_input(n).node for n in inputs), outputs=tuple(parse_input(n).node for n in outputs)
    )
    work, report = run_pass("inline_functions", graph_def, ctx)
    if report.changed:
        log.info("inlined %d function calls: %s", len(report.changed), ", ".join(report.changed[:5]))
    for skip in report.skipped:
        log.info("function call left in the graph: %s (%s)", skip.node, skip.reason)
    return work, report.skipped


def plain_ops(graph_def: Any, inputs: tuple[str, ...], outputs: tuple[str, ...]) -> Any:
    """What `tfcpu.load` runs: `inline_functions`, then `ungroup_convolutions` on a graph with
    ``Conv2D`` nodes, so no grouped convolution hides in an XLA call nor reaches a fused kernel
    that refuses groups. Returns ``graph_def`` itself when there is nothing to do, else a copy."""
    graph_def, _ = inline_calls(graph_def, inputs, outputs)
    if not any(n.op == "Conv2D" for n in graph_def.node):
        return graph_def
    from tfcpu.graph.passes import run_pass

    ctx = PassContext(
        inputs=tuple(parse_input(n).node for n in inputs), outputs=tuple(parse_input(n).node for n in outputs)
    )
    work, report = run_pass("ungroup_convolutions", graph_def, ctx)
    if not report.changed:
        return graph_def
    log.info("rewrote %d grouped convolutions: %s", len(report.changed), ", ".join(report.changed[:5]))
    return work
