# Long on purpose: forward pass, hand-written backward pass and model share a cache.
"""A stacked LSTM with a dense output layer, forward and backward, in NumPy.

Layout: the public API is batch-first, ``x`` is ``(batch, time, features)``.
Inside, arrays are time-major ``(time, batch, ...)`` so that every timestep is a
contiguous ``(batch, ...)`` block.

Gates are fused in one ``(..., 4 * hidden)`` block ordered ``i, f, g, o`` (input,
forget, candidate, output), the order of ``torch.nn.LSTM``; with ``z`` the
pre-activations of one timestep::

    z = x_t @ W_x + h_{t-1} @ W_h + b           (batch, 4H)
    i, f, o = sigmoid(z_i, z_f, z_o);  g = tanh(z_g)
    c_t = f * c_{t-1} + i * g
    h_t = o * tanh(c_t)

``W_x`` is ``(features, 4H)`` and ``W_h`` is ``(H, 4H)`` (torch stores the
transposes), and ``b`` is one bias (torch's ``b_ih + b_hh``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

Params = dict[str, np.ndarray]

N_GATES = 4  # i, f, g, o
_CONFIG_KEYS = ("input_size", "hidden_size", "output_size", "num_layers")
_FORGET, _CANDIDATE = 1, 2


@dataclass
class LayerCache:
    """What one layer's forward keeps for its backward (time-major).

    Attributes:
        x: Layer input, ``(T, B, F)``.
        h: Hidden states ``h_0 .. h_T``, ``(T + 1, B, H)``.
        c: Cell states ``c_0 .. c_T``, ``(T + 1, B, H)``.
        gates: Gate activations ``i, f, g, o``, ``(T, B, 4, H)``.
        tanh_c: ``tanh(c_1 .. c_T)``, ``(T, B, H)``.
    """

    x: np.ndarray
    h: np.ndarray
    c: np.ndarray
    gates: np.ndarray
    tanh_c: np.ndarray


@dataclass
class Cache:
    """What :meth:`LSTMModel.forward` keeps for :meth:`LSTMModel.backward`."""

    layers: list[LayerCache]
    top: np.ndarray  # (T, B, H), input of the dense layer


def _gate_affine(hidden_size: int, dtype: np.dtype) -> tuple[np.ndarray, ...]:
    """Constants that turn one ``tanh`` over all four gates into the activations.

    ``sigmoid(z) = 0.5 * tanh(0.5 * z) + 0.5``, so scaling the sigmoid gates'
    pre-activations by 0.5 lets a single ``tanh`` call serve all four gates.

    Returns:
        ``(pre_scale, post_scale, post_shift)``, each ``(4H,)``.
    """
    scale = np.full((N_GATES, hidden_size), 0.5, dtype=dtype)
    scale[_CANDIDATE] = 1.0
    shift = np.full((N_GATES, hidden_size), 0.5, dtype=dtype)
    shift[_CANDIDATE] = 0.0
    return scale.ravel(), scale.ravel(), shift.ravel()


def lstm_layer_forward(
    x: np.ndarray,
    h0: np.ndarray,
    c0: np.ndarray,
    w_x: np.ndarray,
    w_h: np.ndarray,
    b: np.ndarray,
) -> LayerCache:
    """Run one LSTM layer over a whole sequence.

    Args:
        x: Input, ``(T, B, F)``.
        h0: Initial hidden state, ``(B, H)``.
        c0: Initial cell state, ``(B, H)``.
        w_x: Input weights, ``(F, 4H)``.
        w_h: Recurrent weights, ``(H, 4H)``.
        b: Bias, ``(4H,)``.

    Returns:
        The cache; ``cache.h[1:]`` is the output sequence ``(T, B, H)``.
    """
    n_steps, batch, n_in = x.shape
    hidden = w_h.shape[0]
    pre, post, shift = _gate_affine(hidden, x.dtype)
    # The input projection does not depend on the recurrence: one large matmul
    # for all timesteps, leaving one (B, H) @ (H, 4H) matmul inside the loop.
    z = (x.reshape(n_steps * batch, n_in) @ (w_x * pre)).reshape(
        n_steps, batch, N_GATES * hidden
    )
    z += b * pre
    w_h_pre = w_h * pre
    h = np.empty((n_steps + 1, batch, hidden), dtype=x.dtype)
    c = np.empty_like(h)
    tanh_c = np.empty((n_steps, batch, hidden), dtype=x.dtype)
    h[0], c[0] = h0, c0
    rec = np.empty((batch, N_GATES * hidden), dtype=x.dtype)
    ig = np.empty((batch, hidden), dtype=x.dtype)
    gates = z.reshape(n_steps, batch, N_GATES, hidden)  # a view: z becomes the gates
    i, f, g, o = (gates[:, :, k] for k in range(N_GATES))
    for t in range(n_steps):
        zt = z[t]
        zt += np.matmul(h[t], w_h_pre, out=rec)
        np.tanh(zt, out=zt)
        zt *= post
        zt += shift
        np.multiply(f[t], c[t], out=c[t + 1])
        c[t + 1] += np.multiply(i[t], g[t], out=ig)
        np.tanh(c[t + 1], out=tanh_c[t])
        np.multiply(o[t], tanh_c[t], out=h[t + 1])
    return LayerCache(x=x, h=h, c=c, gates=gates, tanh_c=tanh_c)


def _times_sigmoid_grad(
    factor: np.ndarray, s: np.ndarray, out: np.ndarray
) -> np.ndarray:
    """``out = factor * s * (1 - s)``: times the derivative of a sigmoid output ``s``.

    Written in place: fresh temporaries of a whole sequence cost page faults.
    """
    np.subtract(1, s, out=out)
    out *= s
    out *= factor
    return out


def _times_tanh_grad(factor: np.ndarray, a: np.ndarray, out: np.ndarray) -> np.ndarray:
    """``out = factor * (1 - a**2)``: times the derivative of a tanh output ``a``."""
    np.multiply(a, a, out=out)
    np.subtract(1, out, out=out)
    out *= factor
    return out


def lstm_layer_backward(
    cache: LayerCache,
    dh_seq: np.ndarray,
    dh_last: np.ndarray,
    dc_last: np.ndarray,
    w_x: np.ndarray,
    w_h: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, Params]:
    """Backpropagation through time for one layer.

    Args:
        cache: From :func:`lstm_layer_forward`.
        dh_seq: Loss gradient w.r.t. the output sequence ``h_1 .. h_T``, ``(T, B, H)``.
        dh_last: Loss gradient w.r.t. the final hidden state ``h_T``, ``(B, H)``.
        dc_last: Loss gradient w.r.t. the final cell state ``c_T``, ``(B, H)``.
        w_x: Input weights, ``(F, 4H)``.
        w_h: Recurrent weights, ``(H, 4H)``.

    Returns:
        ``(dx, dh0, dc0, grads)`` with ``dx`` ``(T, B, F)``, ``dh0`` and ``dc0``
        ``(B, H)`` and ``grads`` holding ``w_x``, ``w_h`` and ``b``.
    """
    x, gates, tanh_c = cache.x, cache.gates, cache.tanh_c
    n_steps, batch, n_in = x.shape
    hidden = w_h.shape[0]
    i, f, g, o = (gates[:, :, k] for k in range(N_GATES))

    # Everything that does not depend on the incoming gradient, vectorised over
    # all timesteps; the loop below then needs six small array operations.
    # d z_{i,f,g} = dc * local[:, :, :3],  d z_o = dh * local[:, :, 3]
    local = np.empty_like(gates)
    _times_sigmoid_grad(g, i, out=local[:, :, 0])
    _times_sigmoid_grad(cache.c[:-1], f, out=local[:, :, 1])
    _times_tanh_grad(i, g, out=local[:, :, 2])
    _times_sigmoid_grad(tanh_c, o, out=local[:, :, 3])
    dc_from_h = _times_tanh_grad(o, tanh_c, out=np.empty_like(tanh_c))

    dz = np.empty_like(gates)
    dh = np.empty((batch, hidden), dtype=x.dtype)
    rec = dh_last.astype(x.dtype, copy=True)  # gradient reaching h_t from step t + 1
    dc = dc_last.astype(x.dtype, copy=True)
    tmp = np.empty_like(dh)
    w_h_t = np.ascontiguousarray(w_h.T)
    for t in range(n_steps - 1, -1, -1):
        np.add(dh_seq[t], rec, out=dh)
        dc += np.multiply(dh, dc_from_h[t], out=tmp)
        np.multiply(dc[:, None, :], local[t, :, :3], out=dz[t, :, :3])
        np.multiply(dh, local[t, :, 3], out=dz[t, :, 3])
        dc *= f[t]
        np.matmul(dz[t].reshape(batch, N_GATES * hidden), w_h_t, out=rec)

    dz_flat = dz.reshape(n_steps * batch, N_GATES * hidden)
    grads = {
        "w_x": x.reshape(n_steps * batch, n_in).T @ dz_flat,
        "w_h": cache.h[:-1].reshape(n_steps * batch, hidden).T @ dz_flat,
        "b": dz_flat.sum(axis=0),
    }
    dx = (dz_flat @ w_x.T).reshape(n_steps, batch, n_in)
    return dx, rec, dc, grads


def glorot_uniform(
    rng: np.random.Generator, fan_in: int, fan_out: int, shape: tuple[int, ...]
) -> np.ndarray:
    """Xavier/Glorot uniform draw, ``U(-a, a)`` with ``a = sqrt(6 / (fan_in + fan_out))``."""
    limit = np.sqrt(6.0 / (fan_in + fan_out))
    return rng.uniform(-limit, limit, size=shape)


class LSTMModel:
    """Stacked LSTM followed by a dense layer applied at every timestep.

    Parameters live in ``self.params`` (names ``lstm{k}.w_x``, ``lstm{k}.w_h``,
    ``lstm{k}.b``, ``head.w`` ``(H, O)``, ``head.b`` ``(O,)``); :meth:`backward`
    returns gradients under the same names plus ``x``, ``h0`` and ``c0``.

    Args:
        input_size: Features per timestep ``F``.
        hidden_size: Hidden units per layer ``H``.
        output_size: Outputs per timestep ``O``.
        num_layers: Number of stacked LSTM layers.
        forget_bias: Initial forget-gate bias (1.0 helps gradients flow early on).
        dtype: ``float64`` (default) or ``float32``.
        seed: Seed of the weight initialisation.
    """

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        output_size: int,
        num_layers: int = 1,
        *,
        forget_bias: float = 1.0,
        dtype: str | np.dtype = "float64",
        seed: int = 0,
    ):
        for name, value in (
            ("input_size", input_size),
            ("hidden_size", hidden_size),
            ("output_size", output_size),
            ("num_layers", num_layers),
        ):
            if int(value) != value or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        self.dtype = np.dtype(dtype)
        if self.dtype not in (np.float32, np.float64):
            raise ValueError(f"dtype must be float32 or float64, got {self.dtype}")
        self.input_size, self.hidden_size = input_size, hidden_size
        self.output_size, self.num_layers = output_size, num_layers

        rng = np.random.default_rng(seed)
        hid = hidden_size
        self.params: Params = {}
        for k in range(num_layers):
            n_in = input_size if k == 0 else hid
            # Glorot per gate block: each gate is its own (n_in -> H) map.
            w_x = glorot_uniform(rng, n_in, hid, (n_in, N_GATES, hid))
            w_h = glorot_uniform(rng, hid, hid, (hid, N_GATES, hid))
            b = np.zeros((N_GATES, hid))
            b[_FORGET] = forget_bias
            self.params[f"lstm{k}.w_x"] = w_x.reshape(n_in, N_GATES * hid)
            self.params[f"lstm{k}.w_h"] = w_h.reshape(hid, N_GATES * hid)
            self.params[f"lstm{k}.b"] = b.ravel()
        self.params["head.w"] = glorot_uniform(
            rng, hid, output_size, (hid, output_size)
        )
        self.params["head.b"] = np.zeros(output_size)
        self.params = {
            k: np.ascontiguousarray(v, dtype=self.dtype) for k, v in self.params.items()
        }

    def _check_input(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x)
        want = f"(batch, time, {self.input_size})"
        if x.ndim != 3 or x.shape[2] != self.input_size:
            raise ValueError(f"expected input of shape {want}, got {x.shape}")
        if x.shape[0] == 0 or x.shape[1] == 0:
            raise ValueError(f"empty input: expected shape {want}, got {x.shape}")
        if not np.issubdtype(x.dtype, np.number):
            raise ValueError(f"expected a numeric input array, got dtype {x.dtype}")
        x = x.astype(self.dtype, copy=False)
        if not np.isfinite(x).all():
            raise ValueError(f"input of shape {x.shape} contains NaN or infinity")
        return x

    def _check_state(self, state, batch: int) -> tuple[np.ndarray, np.ndarray]:
        want = (self.num_layers, batch, self.hidden_size)
        if state is None:
            zeros = np.zeros(want, dtype=self.dtype)
            return zeros, zeros.copy()
        h0, c0 = (np.asarray(s, dtype=self.dtype) for s in state)
        for name, s in (("h0", h0), ("c0", c0)):
            if s.shape != want:
                raise ValueError(f"expected {name} of shape {want}, got {s.shape}")
            if not np.isfinite(s).all():
                raise ValueError(f"{name} of shape {s.shape} contains NaN or infinity")
        return h0, c0

    def forward(
        self,
        x: np.ndarray,
        state: tuple[np.ndarray, np.ndarray] | None = None,
    ) -> tuple[np.ndarray, tuple[np.ndarray, np.ndarray], Cache]:
        """Run the network.

        Args:
            x: Input, ``(B, T, F)``.
            state: Optional initial ``(h0, c0)``, each ``(L, B, H)``; zeros if None.

        Returns:
            ``(y, (h_n, c_n), cache)`` with ``y`` ``(B, T, O)`` and the final
            states ``(L, B, H)``, as ``nn.LSTM(batch_first=True)`` + ``nn.Linear``.
        """
        x = self._check_input(x)
        h0, c0 = self._check_state(state, x.shape[0])
        p = self.params
        layer_in = np.ascontiguousarray(x.transpose(1, 0, 2))
        caches = []
        for k in range(self.num_layers):
            cache = lstm_layer_forward(
                layer_in,
                h0[k],
                c0[k],
                p[f"lstm{k}.w_x"],
                p[f"lstm{k}.w_h"],
                p[f"lstm{k}.b"],
            )
            caches.append(cache)
            layer_in = cache.h[1:]
        y = layer_in @ p["head.w"] + p["head.b"]  # (T, B, O)
        h_n = np.stack([cache.h[-1] for cache in caches])
        c_n = np.stack([cache.c[-1] for cache in caches])
        return y.transpose(1, 0, 2), (h_n, c_n), Cache(layers=caches, top=layer_in)

    def backward(
        self,
        cache: Cache,
        dy: np.ndarray,
        dh_n: np.ndarray | None = None,
        dc_n: np.ndarray | None = None,
    ) -> Params:
        """Backpropagate through the dense layer and all LSTM layers.

        Args:
            cache: From :meth:`forward`.
            dy: Loss gradient w.r.t. ``y``, ``(B, T, O)``.
            dh_n: Optional loss gradient w.r.t. the final hidden states ``(L, B, H)``.
            dc_n: Optional loss gradient w.r.t. the final cell states ``(L, B, H)``.

        Returns:
            Gradients of every parameter (same names and shapes as ``params``),
            and of ``x`` ``(B, T, F)``, ``h0`` and ``c0`` ``(L, B, H)``.
        """
        n_steps, batch, hidden = cache.top.shape
        want = (batch, n_steps, self.output_size)
        if dy.shape != want:
            raise ValueError(f"expected dy of shape {want}, got {dy.shape}")
        state_shape = (self.num_layers, batch, hidden)
        dh_n = np.zeros(state_shape, self.dtype) if dh_n is None else dh_n
        dc_n = np.zeros(state_shape, self.dtype) if dc_n is None else dc_n
        for name, d in (("dh_n", dh_n), ("dc_n", dc_n)):
            if d.shape != state_shape:
                raise ValueError(
                    f"expected {name} of shape {state_shape}, got {d.shape}"
                )
        p = self.params
        dy_t = np.ascontiguousarray(dy.transpose(1, 0, 2), dtype=self.dtype)
        grads: Params = {
            "head.w": cache.top.reshape(-1, hidden).T
            @ dy_t.reshape(-1, self.output_size),
            "head.b": dy_t.sum(axis=(0, 1)),
        }
        d_seq = dy_t @ p["head.w"].T  # (T, B, H)
        dh0, dc0 = np.empty(state_shape, self.dtype), np.empty(state_shape, self.dtype)
        for k in reversed(range(self.num_layers)):
            d_seq, dh0[k], dc0[k], layer_grads = lstm_layer_backward(
                cache.layers[k],
                d_seq,
                dh_n[k],
                dc_n[k],
                p[f"lstm{k}.w_x"],
                p[f"lstm{k}.w_h"],
            )
            grads.update({f"lstm{k}.{name}": g for name, g in layer_grads.items()})
        grads.update(x=d_seq.transpose(1, 0, 2), h0=dh0, c0=dc0)
        return grads

    def state_dict(self) -> Params:
        """Architecture and weights as named arrays, for ``np.savez`` (no pickling)."""
        config = {f"config.{k}": np.asarray(getattr(self, k)) for k in _CONFIG_KEYS}
        return config | {k: v.copy() for k, v in self.params.items()}

    @classmethod
    def from_state_dict(cls, state: Params) -> LSTMModel:
        """Rebuild a model saved by :meth:`state_dict`; shapes are checked by name."""
        missing = [f"config.{k}" for k in _CONFIG_KEYS if f"config.{k}" not in state]
        if missing:
            raise ValueError(
                f"state lacks {missing}; it was not written by state_dict()"
            )
        config = {k: int(state[f"config.{k}"]) for k in _CONFIG_KEYS}
        model = cls(**config, dtype=state["head.w"].dtype)
        weights = {k: v for k, v in state.items() if not k.startswith("config.")}
        if set(weights) != set(model.params):
            raise ValueError(
                f"expected weights {sorted(model.params)}, got {sorted(weights)}"
            )
        for name, value in weights.items():
            if value.shape != model.params[name].shape:
                raise ValueError(
                    f"expected {name} of shape {model.params[name].shape}, got {value.shape}"
                )
            model.params[name][...] = value
        return model

    def __call__(self, x: np.ndarray, state=None) -> np.ndarray:
        """Outputs ``(B, T, O)`` only, for inference."""
        return self.forward(x, state)[0]

    def num_parameters(self) -> int:
        """Total number of trainable scalars."""
        return sum(v.size for v in self.params.values())
