"""Builders shared by the simulated-exchange tests: engines with a still market, orders."""

import random
from decimal import Decimal

from scalper.core.model import OrderRequest
from scalper.core.slippage import SlippageConfig
from scalper.core.types import OrderType, PositionMode, PositionSide, Side, TimeInForce
from scalper.venues.sim.engine import SimConfig, SimEngine, SymbolConfig
from scalper.venues.sim.filters import SymbolFilters
from scalper.venues.sim.market import BookConfig, PricePathConfig
from scalper.venues.sim.ratelimit import RateLimitConfig

D = Decimal
BTC = "BTCUSDT"


def still_symbol(
    *,
    price: str = "60000",
    book: BookConfig | None = None,
    filters: SymbolFilters | None = None,
    volatility_bps: float = 0.0,
    step_seconds: float = 1.0,
    series: tuple[tuple[float, Decimal], ...] = (),
) -> SymbolConfig:
    """BTCUSDT whose mid does not move unless a test moves it (or a series does)."""
    return SymbolConfig(
        symbol=BTC,
        filters=filters or SymbolFilters(),
        path=PricePathConfig(
            initial_price=D(price),
            volatility_bps=volatility_bps,
            step_seconds=step_seconds,
            series=series,
        ),
        book=book or BookConfig(),
    )


def make_engine(
    *,
    symbol: SymbolConfig | None = None,
    mode: PositionMode = PositionMode.ONE_WAY,
    balance: str = "1000000",
    seed: int = 7,
    rate_limits: RateLimitConfig | None = None,
    slippage: SlippageConfig | None = None,
    **config: object,
) -> SimEngine:
    """An engine on one still BTCUSDT; takers fill at level prices unless ``slippage``."""
    cfg = SimConfig(
        symbols=(symbol or still_symbol(),),
        position_mode=mode,
        initial_balance=D(balance),
        rate_limits=rate_limits or RateLimitConfig(),
        slippage=slippage,
        **config,  # type: ignore[arg-type]
    )
    return SimEngine(cfg, random.Random(seed))


def limit(
    side: Side,
    qty: str,
    price: str,
    coid: str,
    *,
    tif: TimeInForce = TimeInForce.GTC,
    reduce_only: bool = False,
    position_side: PositionSide = PositionSide.BOTH,
    symbol: str = BTC,
) -> OrderRequest:
    return OrderRequest(
        symbol=symbol,
        side=side,
        order_type=OrderType.LIMIT,
        client_order_id=coid,
        quantity=D(qty),
        price=D(price),
        time_in_force=tif,
        reduce_only=reduce_only,
        position_side=position_side,
    )


def market(
    side: Side,
    qty: str,
    coid: str,
    *,
    reduce_only: bool = False,
    position_side: PositionSide = PositionSide.BOTH,
    symbol: str = BTC,
) -> OrderRequest:
    return OrderRequest(
        symbol=symbol,
        side=side,
        order_type=OrderType.MARKET,
        client_order_id=coid,
        quantity=D(qty),
        reduce_only=reduce_only,
        position_side=position_side,
    )


def stop(
    order_type: OrderType,
    side: Side,
    stop_price: str,
    coid: str,
    *,
    qty: str | None = None,
    close_position: bool = False,
    reduce_only: bool = False,
    position_side: PositionSide = PositionSide.BOTH,
    price: str | None = None,
) -> OrderRequest:
    return OrderRequest(
        symbol=BTC,
        side=side,
        order_type=order_type,
        client_order_id=coid,
        quantity=None if qty is None else D(qty),
        price=None if price is None else D(price),
        stop_price=D(stop_price),
        reduce_only=reduce_only,
        close_position=close_position,
        position_side=position_side,
    )
