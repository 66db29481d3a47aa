"""scalper: an execution-reliability layer for automated trading on crypto perpetual futures.

A strategy says *what* it wants (an intent); scalper makes it happen on an exchange that
answers late, twice, wrongly or not at all, while keeping the strategy's risk bounded.

Layering, from the inside out:

* ``scalper.core``: pure decision logic (no I/O, no clock reads, no global randomness).
* ``scalper.venues``: the exchange boundary (simulated and real Binance USD-M).
* ``scalper.actors``, ``scalper.store``, ``scalper.ops``: the Trio actor system around the core.
"""

__version__ = "0.1.0"
