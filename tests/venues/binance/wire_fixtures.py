"""Real Binance USD-M wire messages used as test vectors.

Sources (see shared reference/binance_usdm.md):
* ``CCXT_*``: ccxt static fixtures ``ts/src/test/static/{request,response}/binance*.json``
  (ids and times there are sometimes strings; kept verbatim to prove we accept both).
* ``DOC_*``: examples from the official USD-M docs, as quoted in the reference digest
  (sections 3 and 5) or on the algo-order / exchangeInfo / Trade-Lite doc pages.
* ``SIGN_*``: the official HMAC test vector (section 2), verified with Python's hmac.
"""

import json
from typing import Any

# --- signing (section 2) -----------------------------------------------------------------

SIGN_SECRET = b"2b5eb11e18796d12d88f13dc27dbbd02c2cc51ff7059765ed9821957d82bb4d9"
SIGN_PARAMS = [
    ("symbol", "BTCUSDT"),
    ("side", "BUY"),
    ("type", "LIMIT"),
    ("quantity", "1"),
    ("price", "9000"),
    ("timeInForce", "GTC"),
]
SIGN_TIMESTAMP = 1591702613943
SIGN_PAYLOAD = (
    "symbol=BTCUSDT&side=BUY&type=LIMIT&quantity=1&price=9000&timeInForce=GTC"
    "&recvWindow=5000&timestamp=1591702613943"
)
SIGN_SIGNATURE = "3c661234138461fcc7a7d8746c6558c9842d4e10870d2ecbedf7777cad694af9"
SIGN_MIXED_QUERY = "symbol=BTCUSDT&side=BUY&type=LIMIT&timeInForce=GTC"
SIGN_MIXED_BODY = "quantity=1&price=9000&recvWindow=5000&timestamp=1591702613943"
SIGN_MIXED_SIGNATURE = "30baaf0fab549bbeda7f5ef201898b34122da25fd23c646cac2c529aebe670a4"

# --- ccxt request fixtures (section 9): params minus ccxt's skipKeys --------------------

CCXT_SKIP_KEYS = {"signature", "timestamp", "recvWindow", "newClientOrderId"}
CCXT_REQUESTS: dict[str, tuple[str, str]] = {
    "swap_market_buy": (
        "https://testnet.binancefuture.com/fapi/v1/order",
        "timestamp=1698772686486&symbol=LTCUSDT&side=BUY&newClientOrderId=x-xcKtGhcud0e56169437e41d2a50414&newOrderRespType=RESULT&type=MARKET&quantity=0.1&recvWindow=10000&signature=a703d0332fd54447dc9439dc60ddcc515d170c2357b12041504f5eb228002c09",
    ),
    "swap_limit_buy": (
        "https://testnet.binancefuture.com/fapi/v1/order",
        "timestamp=1698772722784&symbol=LTCUSDT&side=BUY&newClientOrderId=x-xcKtGhcu857a045c78a148bda82a3b&newOrderRespType=RESULT&type=LIMIT&quantity=0.1&price=55&timeInForce=GTC&recvWindow=10000&signature=ea0c2c8986c05546309cfb5248febc8a551c1a7ccf7252305e26bb60e41a8d60",
    ),
    "swap_limit_sell": (
        "https://testnet.binancefuture.com/fapi/v1/order",
        "timestamp=1699114065223&symbol=LTCUSDT&side=SELL&newClientOrderId=x-xcKtGhcu6e4e96867ac345ee9151b9&newOrderRespType=RESULT&type=LIMIT&quantity=0.2&price=100&timeInForce=GTC&recvWindow=10000&signature=057d2e77971840b5e2726b88a7a1e2fc740c032437bc4ea38c89e6d1c2968b9a",
    ),
    "swap_limit_reduce_only": (
        "https://testnet.binancefuture.com/fapi/v1/order",
        "timestamp=1699380630765&symbol=LTCUSDT&side=BUY&newClientOrderId=x-xcKtGhcuad6ae547a99e48b686c911&newOrderRespType=RESULT&type=LIMIT&quantity=0.2&price=60&timeInForce=GTC&reduceOnly=true&recvWindow=10000&signature=3d99de3afdd8a6ad846d201fe4f446b75dd956db59e986db345d453b79b7bea2",
    ),
    "swap_limit_post_only": (
        "https://testnet.binancefuture.com/fapi/v1/order",
        "timestamp=1699380695835&symbol=LTCUSDT&side=BUY&newClientOrderId=x-xcKtGhcu392bafca1fb740208ee8d3&newOrderRespType=RESULT&type=LIMIT&quantity=0.2&price=50&timeInForce=GTX&recvWindow=10000&signature=27dfce7c02d210d4d88f029e34550f153283e849b34bbf80aebbc7f860937b84",
    ),
    "swap_stop_limit": (
        "https://demo-fapi.binance.com/fapi/v1/algoOrder",
        "timestamp=1763537060906&symbol=LTCUSDT&side=BUY&newClientOrderId=x-cvBPrNm92b1248645c914f2f8dbee1&newOrderRespType=RESULT&type=STOP&quantity=0.21&price=51&triggerPrice=101&algoType=CONDITIONAL&recvWindow=10000&signature=8d0776ee4222f0735962d58474396a6ea4cdf2a79dd5165eca3e874751946cd9",
    ),
    "swap_take_profit_limit": (
        "https://demo-fapi.binance.com/fapi/v1/algoOrder",
        "timestamp=1763537187402&symbol=LTCUSDT&side=SELL&newClientOrderId=x-cvBPrNm94ac257afcbe1478cbbb6e1&newOrderRespType=RESULT&type=TAKE_PROFIT&quantity=0.21&price=104&triggerPrice=108&algoType=CONDITIONAL&recvWindow=10000&signature=69279d7d63b4f72565ae954b9a0cf8daaab49df6ce10a1a6373c64344b7f0f1f",
    ),
    "swap_trailing": (
        "https://demo-fapi.binance.com/fapi/v1/algoOrder",
        "timestamp=1763537539093&symbol=BTCUSDT&side=SELL&callbackRate=5&newClientOrderId=x-cvBPrNm9df3d5f685656489d9cf7bf&newOrderRespType=RESULT&type=TRAILING_STOP_MARKET&quantity=0.11&reduceOnly=true&algoType=CONDITIONAL&recvWindow=10000&signature=c902728a2809cd2e122ff5276ee2a9aab644eff5f19696b3ca19f43fa8a9d172",
    ),
    "cancel_by_client_id": (
        "https://demo-fapi.binance.com/fapi/v1/order",
        "timestamp=1762259428215&symbol=LTCUSDT&origClientOrderId=myid123&recvWindow=10000&signature=daf4d5fb32379b627965552800d412f40252494e7bd40bafab3cef56435378a5",
    ),
    "fetch_by_client_id": (
        "https://demo-fapi.binance.com/fapi/v1/order",
        "timestamp=1762259346959&symbol=LTCUSDT&origClientOrderId=myid123&recvWindow=10000&signature=220e2d45dbeeae63cd2474359959e3917f902744db78bb7c9efd0db8880b6ffc",
    ),
}
#: ccxt's binanceusdm.json: cancelOrders with clientOrderIds (ccxt lower-cases the key).
CCXT_BATCH_CANCEL_URL = "https://testnet.binancefuture.com/fapi/v1/batchOrders?timestamp=1756029958875&symbol=ETHUSDT&recvWindow=10000&origclientorderidlist=%5B%22id1%22%2C%22id2%22%5D&signature=6a3b8cc049c6a824c4c6b839ec465b67c619496a33833176d7c04210d3a5335b"

# --- ccxt response fixtures (section 9) ---------------------------------------------------

CCXT_CREATE_ORDERS_SWAP = """[{"orderId":4087922044,"symbol":"BTCUSDT","status":"NEW",
"clientOrderId":"x-xcKtGhcu04075babaeb34c55af79ba","price":"110001.00","avgPrice":"0.00",
"origQty":"0.200","executedQty":"0.000","cumQty":"0.000","cumQuote":"0.00000",
"timeInForce":"GTC","type":"LIMIT","reduceOnly":false,"closePosition":false,"side":"SELL",
"positionSide":"BOTH","stopPrice":"0.00","workingType":"CONTRACT_PRICE","priceProtect":false,
"origType":"LIMIT","priceMatch":"NONE","selfTradePreventionMode":"NONE","goodTillDate":0,
"updateTime":1739781831932}]"""

CCXT_FETCH_OPEN_ORDER_SWAP = """{"orderId":"664082074","symbol":"LTCUSDT","status":"NEW",
"clientOrderId":"x-xcKtGhcu68f8383451844295b3e8b9","price":"50.00","avgPrice":"0.00000",
"origQty":"0.200","executedQty":"0.000","cumQuote":"0.00000","timeInForce":"GTX",
"type":"LIMIT","reduceOnly":false,"closePosition":false,"side":"BUY","positionSide":"BOTH",
"stopPrice":"0.00","workingType":"CONTRACT_PRICE","priceProtect":false,"origType":"LIMIT",
"priceMatch":"NONE","selfTradePreventionMode":"NONE","goodTillDate":"0",
"time":"1707907323983","updateTime":"1707907323991"}"""

CCXT_POSITIONS_V3 = """[{"symbol":"BTCUSDT","positionSide":"BOTH","positionAmt":"0.009",
"entryPrice":"67445.9","breakEvenPrice":"67479.62295","markPrice":"67502.68519858",
"unRealizedProfit":"0.51106678","liquidationPrice":"64846.98753790","isolatedMargin":"0",
"notional":"607.52416678","marginAsset":"USDT","isolatedWallet":"0",
"initialMargin":"7.59405208","maintMargin":"2.43009666","positionInitialMargin":"7.59405208",
"openOrderInitialMargin":"0","adl":"2","bidNotional":"0","askNotional":"0",
"updateTime":"1722161166529"}]"""

CCXT_ACCOUNT_V3 = """{"totalInitialMargin":"7.59482199","totalMaintMargin":"2.43034303",
"totalWalletBalance":"25.72610060","totalUnrealizedProfit":"0.54230362",
"totalMarginBalance":"26.26840422","totalPositionInitialMargin":"7.59482199",
"totalOpenOrderInitialMargin":"0.00000000","totalCrossWalletBalance":"25.72610060",
"totalCrossUnPnl":"0.54230362","availableBalance":"18.65949928","maxWithdrawAmount":"18.65949928",
"assets":[
{"asset":"FDUSD","walletBalance":"0.00000000","unrealizedProfit":"0.00000000","marginBalance":"0.00000000","maintMargin":"0.00000000","initialMargin":"0.00000000","positionInitialMargin":"0.00000000","openOrderInitialMargin":"0.00000000","crossWalletBalance":"0.00000000","crossUnPnl":"0.00000000","availableBalance":"18.46663722","maxWithdrawAmount":"0.00000000","updateTime":"0"},
{"asset":"BTC","walletBalance":"0.00000000","unrealizedProfit":"0.00000000","marginBalance":"0.00000000","maintMargin":"0.00000000","initialMargin":"0.00000000","positionInitialMargin":"0.00000000","openOrderInitialMargin":"0.00000000","crossWalletBalance":"0.00000000","crossUnPnl":"0.00000000","availableBalance":"0.00026317","maxWithdrawAmount":"0.00000000","updateTime":"0"},
{"asset":"BNB","walletBalance":"0.00000000","unrealizedProfit":"0.00000000","marginBalance":"0.00000000","maintMargin":"0.00000000","initialMargin":"0.00000000","positionInitialMargin":"0.00000000","openOrderInitialMargin":"0.00000000","crossWalletBalance":"0.00000000","crossUnPnl":"0.00000000","availableBalance":"0.03068085","maxWithdrawAmount":"0.00000000","updateTime":"1722095514499"},
{"asset":"ETH","walletBalance":"0.00000000","unrealizedProfit":"0.00000000","marginBalance":"0.00000000","maintMargin":"0.00000000","initialMargin":"0.00000000","positionInitialMargin":"0.00000000","openOrderInitialMargin":"0.00000000","crossWalletBalance":"0.00000000","crossUnPnl":"0.00000000","availableBalance":"0.00548108","maxWithdrawAmount":"0.00000000","updateTime":"0"},
{"asset":"USDT","walletBalance":"3.72964781","unrealizedProfit":"0.54238506","marginBalance":"4.27203287","maintMargin":"2.43022194","initialMargin":"7.59444356","positionInitialMargin":"7.59444356","openOrderInitialMargin":"0.00000000","crossWalletBalance":"3.72964781","crossUnPnl":"0.54238506","availableBalance":"18.65856952","maxWithdrawAmount":"3.72964781","updateTime":"1722161166529"},
{"asset":"USDC","walletBalance":"22.00000000","unrealizedProfit":"0.00000000","marginBalance":"22.00000000","maintMargin":"0.00000000","initialMargin":"0.00000000","positionInitialMargin":"0.00000000","openOrderInitialMargin":"0.00000000","crossWalletBalance":"22.00000000","crossUnPnl":"0.00000000","availableBalance":"18.65830123","maxWithdrawAmount":"18.65830123","updateTime":"1721991855073"}],
"positions":[{"symbol":"BTCUSDT","positionSide":"BOTH","positionAmt":"0.009",
"unrealizedProfit":"0.54238506","isolatedMargin":"0","notional":"607.55548506",
"isolatedWallet":"0","initialMargin":"7.59444356","maintMargin":"2.43022194",
"updateTime":"1722161166529"}]}"""

# --- official doc examples (sections 3 and 5, plus doc pages) ---------------------------

DOC_QUERY_ORDER = """{"avgPrice":"0.00000","clientOrderId":"abc","cumQuote":"0","executedQty":"0",
"orderId":1917641,"origQty":"0.40","origType":"LIMIT","price":"9000","reduceOnly":false,
"side":"BUY","positionSide":"BOTH","status":"NEW","stopPrice":"0","closePosition":false,
"symbol":"BTCUSDT","time":1579276756075,"timeInForce":"GTC","type":"LIMIT",
"updateTime":1579276756075,"workingType":"CONTRACT_PRICE","priceProtect":false,
"priceMatch":"NONE","selfTradePreventionMode":"NONE","goodTillDate":0}"""

DOC_CANCEL_ORDER = """{"clientOrderId":"myOrder1","cumQty":"0","cumQuote":"0","executedQty":"0",
"orderId":283194212,"origQty":"11","origType":"LIMIT","price":"9000","avgPrice":"0.00",
"reduceOnly":false,"side":"BUY","positionSide":"BOTH","status":"CANCELED","stopPrice":"0",
"closePosition":false,"symbol":"BTCUSDT","timeInForce":"GTC","type":"LIMIT",
"updateTime":1571110484038,"workingType":"CONTRACT_PRICE","priceProtect":false,
"priceMatch":"NONE","selfTradePreventionMode":"NONE","goodTillDate":0}"""

DOC_MODIFY_ORDER = """{"orderId":20072994037,"symbol":"BTCUSDT","pair":"BTCUSDT","status":"NEW",
"clientOrderId":"LJ9R4QZDihCaS8UAOOLpgW","price":"30005","avgPrice":"0.0","origQty":"1",
"executedQty":"0","cumQty":"0","cumBase":"0","timeInForce":"GTC","type":"LIMIT",
"reduceOnly":false,"closePosition":false,"side":"BUY","positionSide":"LONG","stopPrice":"0",
"workingType":"CONTRACT_PRICE","priceProtect":false,"origType":"LIMIT","priceMatch":"NONE",
"selfTradePreventionMode":"NONE","goodTillDate":0,"updateTime":1629182711600}"""

DOC_POSITION_V2 = """[{"symbol":"BTCUSDT","positionAmt":"0.001","entryPrice":"22185.2",
"breakEvenPrice":"22194.07","markPrice":"21123.05052574","unRealizedProfit":"-1.06214947",
"liquidationPrice":"19731.45529116","leverage":"4","maxNotionalValue":"100000000",
"marginType":"cross","isolatedMargin":"0.00000000","isAutoAddMargin":"false",
"positionSide":"BOTH","notional":"21.12305052","isolatedWallet":"0","updateTime":1655217461579}]"""

DOC_POSITION_V3 = """[{"symbol":"ADAUSDT","positionSide":"BOTH","positionAmt":"30","entryPrice":"0.385",
"breakEvenPrice":"0.385077","markPrice":"0.41047590","unRealizedProfit":"0.76427700",
"liquidationPrice":"0","isolatedMargin":"0","notional":"12.31427700","marginAsset":"USDT",
"isolatedWallet":"0","initialMargin":"0.61571385","maintMargin":"0.08004280",
"positionInitialMargin":"0.61571385","openOrderInitialMargin":"0","adl":2,"bidNotional":"0",
"askNotional":"0","updateTime":1720736417660}]"""

DOC_USER_TRADES = """[{"buyer":false,"commission":"0.07819010","commissionAsset":"USDT","id":698759,
"maker":false,"orderId":25851813,"price":"7819.01","qty":"0.002","quoteQty":"15.63802",
"realizedPnl":"-0.91539999","side":"SELL","positionSide":"SHORT","symbol":"BTCUSDT",
"time":1569514978020}]"""

DOC_BALANCE_V3 = """[{"accountAlias":"SgsR","asset":"USDT","balance":"122607.35137903",
"crossWalletBalance":"23.72469206","crossUnPnl":"0.00000000","availableBalance":"23.72469206",
"maxWithdrawAmount":"23.72469206","marginAvailable":true,"updateTime":1617939110373}]"""

DOC_EXCHANGE_INFO = """{"exchangeFilters":[],"rateLimits":[
{"interval":"MINUTE","intervalNum":1,"limit":2400,"rateLimitType":"REQUEST_WEIGHT"},
{"interval":"MINUTE","intervalNum":1,"limit":1200,"rateLimitType":"ORDERS"},
{"interval":"SECOND","intervalNum":10,"limit":300,"rateLimitType":"ORDERS"}],
"serverTime":1565613908500,
"assets":[{"asset":"BTC","marginAvailable":true,"autoAssetExchange":"-0.10"},
{"asset":"USDT","marginAvailable":true,"autoAssetExchange":"0"},
{"asset":"BNB","marginAvailable":false,"autoAssetExchange":null}],
"symbols":[{"symbol":"BLZUSDT","pair":"BLZUSDT","contractType":"PERPETUAL",
"deliveryDate":4133404800000,"onboardDate":1598252400000,"status":"TRADING",
"maintMarginPercent":"2.5000","requiredMarginPercent":"5.0000","baseAsset":"BLZ",
"quoteAsset":"USDT","marginAsset":"USDT","pricePrecision":5,"quantityPrecision":0,
"baseAssetPrecision":8,"quotePrecision":8,"underlyingType":"COIN",
"underlyingSubType":["STORAGE"],"settlePlan":0,"triggerProtect":"0.15","filters":[
{"filterType":"PRICE_FILTER","maxPrice":"300","minPrice":"0.0001","tickSize":"0.0001"},
{"filterType":"LOT_SIZE","maxQty":"10000000","minQty":"1","stepSize":"1"},
{"filterType":"MARKET_LOT_SIZE","maxQty":"590119","minQty":"1","stepSize":"1"},
{"filterType":"MAX_NUM_ORDERS","limit":200},
{"filterType":"MIN_NOTIONAL","notional":"5.0"},
{"filterType":"PERCENT_PRICE","multiplierUp":"1.1500","multiplierDown":"0.8500","multiplierDecimal":"4"}],
"orderTypes":["LIMIT","MARKET","STOP","STOP_MARKET","TAKE_PROFIT","TAKE_PROFIT_MARKET","TRAILING_STOP_MARKET"],
"timeInForce":["GTC","IOC","FOK","GTX"],"liquidationFee":"0.010000","marketTakeBound":"0.30"}],
"timezone":"UTC"}"""

DOC_NEW_ALGO_ORDER = """{"algoId":2146760,"clientAlgoId":"6B2I9XVcJpCjqPAJ4YoFX7",
"algoType":"CONDITIONAL","orderType":"TAKE_PROFIT","symbol":"BNBUSDT","side":"SELL",
"positionSide":"BOTH","timeInForce":"GTC","quantity":"0.01","algoStatus":"NEW",
"triggerPrice":"750.000","price":"750.000","icebergQuantity":null,
"selfTradePreventionMode":"EXPIRE_MAKER","workingType":"CONTRACT_PRICE","priceMatch":"NONE",
"closePosition":false,"priceProtect":false,"reduceOnly":false,"activatePrice":"",
"callbackRate":"","createTime":1750485492076,"updateTime":1750485492076,"triggerTime":0,
"goodTillDate":0}"""

DOC_QUERY_ALGO_ORDER = """{"algoId":2146760,"clientAlgoId":"6B2I9XVcJpCjqPAJ4YoFX7",
"algoType":"CONDITIONAL","orderType":"TAKE_PROFIT","symbol":"BNBUSDT","side":"SELL",
"positionSide":"BOTH","timeInForce":"GTC","quantity":"0.01","algoStatus":"CANCELED",
"actualOrderId":"","actualPrice":"0.00000","triggerPrice":"750.000","price":"750.000",
"icebergQuantity":null,"tpTriggerPrice":"0.000","tpPrice":"0.000","slTriggerPrice":"0.000",
"slPrice":"0.000","tpOrderType":"","selfTradePreventionMode":"EXPIRE_MAKER",
"workingType":"CONTRACT_PRICE","priceMatch":"NONE","closePosition":false,"priceProtect":false,
"reduceOnly":false,"createTime":1750485492076,"updateTime":1750514545091,"triggerTime":0,
"goodTillDate":0}"""

DOC_OPEN_ALGO_ORDERS = """[{"algoId":2148627,"clientAlgoId":"MRumok0dkhrP4kCm12AHaB",
"algoType":"CONDITIONAL","orderType":"TAKE_PROFIT","symbol":"BNBUSDT","side":"SELL",
"positionSide":"BOTH","timeInForce":"GTC","quantity":"0.01","algoStatus":"NEW",
"actualOrderId":"","actualPrice":"0.00000","triggerPrice":"750.000","price":"750.000",
"icebergQuantity":null,"tpTriggerPrice":"0.000","tpPrice":"0.000","slTriggerPrice":"0.000",
"slPrice":"0.000","tpOrderType":"","selfTradePreventionMode":"EXPIRE_MAKER",
"workingType":"CONTRACT_PRICE","priceMatch":"NONE","closePosition":false,"priceProtect":false,
"reduceOnly":false,"createTime":1750514941540,"updateTime":1750514941540,"triggerTime":0,
"goodTillDate":0}]"""

DOC_CANCEL_ALGO_ORDER = (
    '{"algoId":2146760,"clientAlgoId":"6B2I9XVcJpCjqPAJ4YoFX7","code":"200","msg":"success"}'
)
DOC_CANCEL_ALL = '{"code":200,"msg":"The operation of cancel all open order is done."}'
DOC_COUNTDOWN = '{"symbol":"BTCUSDT","countdownTime":"100000"}'
DOC_LEVERAGE = '{"leverage":21,"maxNotionalValue":"1000000","symbol":"BTCUSDT"}'
DOC_LISTEN_KEY = '{"listenKey":"pqia91ma19a5s61cv6a81va65sdf19v8a65a1a5s61cv6a81va65sdf19v8a65a1"}'
DOC_SERVER_TIME = '{"serverTime":1499827319559}'
#: ``GET /fapi/v1/premiumIndex?symbol=BTCUSDT`` (Mark Price doc page; the live answer also
#: carries ``estimatedSettlePrice``, ``interestRate`` and ``time``).
DOC_PREMIUM_INDEX = (
    '{"symbol":"BTCUSDT","markPrice":"11793.63104562","indexPrice":"11781.80495970",'
    '"estimatedSettlePrice":"11781.16138815","lastFundingRate":"0.00038246",'
    '"interestRate":"0.00010000","nextFundingTime":1597392000000,"time":1597370495002}'
)
#: Without a symbol: one object per symbol (a delivery contract has no funding).
DOC_PREMIUM_INDEX_ALL = (
    "["
    + DOC_PREMIUM_INDEX
    + ',{"symbol":"BTCUSDT_260327","markPrice":"61234.10000000","indexPrice":"60987.30000000",'
    '"estimatedSettlePrice":"60990.00000000","lastFundingRate":"","interestRate":"",'
    '"nextFundingTime":0,"time":1597370495002}]'
)
DOC_BATCH_MIXED = (
    "["
    + CCXT_CREATE_ORDERS_SWAP.strip()[1:-1]
    + ',{"code":-2022,"msg":"ReduceOnly Order is rejected."}]'
)

DOC_ORDER_TRADE_UPDATE = """{"e":"ORDER_TRADE_UPDATE","E":1568879465651,"T":1568879465650,
"o":{"s":"BTCUSDT","c":"TEST","S":"SELL","o":"TRAILING_STOP_MARKET","f":"GTC","q":"0.001",
"p":"0","ap":"0","sp":"7103.04","x":"NEW","X":"NEW","i":8886774,"l":"0","z":"0","L":"0",
"N":"USDT","n":"0","T":1568879465650,"t":0,"b":"0","a":"9.91","m":false,"R":false,
"wt":"CONTRACT_PRICE","ot":"TRAILING_STOP_MARKET","ps":"LONG","cp":false,"AP":"7476.89",
"cr":"5.0","pP":false,"si":0,"ss":0,"rp":"0","V":"EXPIRE_TAKER","pm":"OPPONENT","gtd":0,
"er":"0"}}"""

DOC_ACCOUNT_UPDATE = """{"e":"ACCOUNT_UPDATE","E":1564745798939,"T":1564745798938,
"a":{"m":"ORDER","B":[{"a":"USDT","wb":"122624.12345678","cw":"100.12345678","bc":"50.12345678"}],
"P":[{"s":"BTCUSDT","pa":"20","ep":"6563.66500","bep":"6564.1","cr":"0","up":"2850.21200",
"mt":"isolated","iw":"13200.70726908","ps":"LONG"}]}}"""

DOC_MARGIN_CALL = """{"e":"MARGIN_CALL","E":1587727187525,"cw":"3.16812045",
"p":[{"s":"ETHUSDT","ps":"LONG","pa":"1.327","mt":"CROSSED","iw":"0","mp":"187.17127",
"up":"-1.166074","mm":"1.614445"}]}"""

DOC_LISTEN_KEY_EXPIRED = (
    '{"e":"listenKeyExpired","E":1736996475556,'
    '"listenKey":"WsCMN0a4KHUPTQuX6IUnqEZfB1inxmv1qR4kbf1LuEjur5VdbzqvyxqG9TSjVVxv"}'
)
DOC_CONFIG_LEVERAGE = (
    '{"e":"ACCOUNT_CONFIG_UPDATE","E":1611646737479,"T":1611646737476,"ac":{"s":"BTCUSDT","l":25}}'
)
DOC_CONFIG_MULTI_ASSETS = (
    '{"e":"ACCOUNT_CONFIG_UPDATE","E":1611646737479,"T":1611646737476,"ai":{"j":true}}'
)

DOC_TRADE_LITE = """{"e":"TRADE_LITE","E":1721895408092,"T":1721895408214,"s":"BTCUSDT",
"q":"0.001","p":"0","m":false,"c":"z8hcUoOsqEdKMeKPSABslD","S":"BUY","L":"64089.20",
"l":"0.040","t":109100866,"i":8886774}"""

DOC_ALGO_UPDATE = """{"e":"ALGO_UPDATE","T":1750515742297,"E":1750515742303,
"o":{"caid":"Q5xaq5EGKgXXa0fD7fs0Ip","aid":2148719,"at":"CONDITIONAL","o":"TAKE_PROFIT",
"s":"BNBUSDT","S":"SELL","ps":"BOTH","f":"GTC","q":"0.01","X":"CANCELED","ai":"",
"ap":"0.00000","aq":"0.00000","act":"0","tp":"750","p":"750","V":"EXPIRE_MAKER",
"wt":"CONTRACT_PRICE","pm":"NONE","cp":false,"pP":false,"R":false,"tt":0,"gtd":0,
"rm":"Reduce Only reject"}}"""

DOC_GRID_UPDATE = """{"e":"GRID_UPDATE","T":1669262908216,"E":1669262908218,
"gu":{"si":176057039,"st":"GRID","ss":"WORKING","s":"BTCUSDT","r":"-0.00300716","up":"16720",
"uq":"-0.001","uf":"-0.00300716","mp":"0.0","ut":1669262908197}}"""


def order_trade_fill() -> dict[str, Any]:
    """The doc's ORDER_TRADE_UPDATE turned into a partial fill of a LIMIT order.

    Same field set as the documented example; values changed to a TRADE execution, as
    seen on the live stream (x=TRADE carries l, L, n, N, t, rp).
    """
    msg: dict[str, Any] = json.loads(DOC_ORDER_TRADE_UPDATE)
    msg["o"].update(
        {
            "c": "sc-E-0123456789abcdef-0",
            "S": "BUY",
            "o": "LIMIT",
            "ot": "LIMIT",
            "q": "0.010",
            "p": "60000.0",
            "ap": "59999.9",
            "sp": "0",
            "x": "TRADE",
            "X": "PARTIALLY_FILLED",
            "l": "0.004",
            "z": "0.004",
            "L": "59999.9",
            "N": "USDT",
            "n": "0.09599984",
            "t": 1122334455,
            "m": True,
            "ps": "BOTH",
            "rp": "0",
            "AP": "0",
            "cr": "0",
        }
    )
    return msg


def ok_json(text: str) -> Any:
    """Decode a fixture with the standard library (floats stay text-exact: none here)."""
    return json.loads(text)


#: Every valid message per parser name, for the fuzzers (decoded JSON).
def corpus() -> dict[str, list[Any]]:
    """Valid decoded messages keyed by parser name."""
    return {
        "parse_order": [
            ok_json(DOC_QUERY_ORDER),
            ok_json(DOC_CANCEL_ORDER),
            ok_json(DOC_MODIFY_ORDER),
            ok_json(CCXT_FETCH_OPEN_ORDER_SWAP),
        ],
        "parse_orders": [ok_json(CCXT_CREATE_ORDERS_SWAP)],
        "parse_batch_orders": [ok_json(DOC_BATCH_MIXED)],
        "parse_algo_order": [ok_json(DOC_NEW_ALGO_ORDER), ok_json(DOC_QUERY_ALGO_ORDER)],
        "parse_algo_orders": [ok_json(DOC_OPEN_ALGO_ORDERS)],
        "parse_algo_cancel": [ok_json(DOC_CANCEL_ALGO_ORDER)],
        "parse_positions": [
            ok_json(DOC_POSITION_V2),
            ok_json(DOC_POSITION_V3),
            ok_json(CCXT_POSITIONS_V3),
        ],
        "parse_account": [ok_json(CCXT_ACCOUNT_V3)],
        "parse_balances": [ok_json(DOC_BALANCE_V3)],
        "parse_user_trades": [ok_json(DOC_USER_TRADES)],
        "parse_exchange_info": [ok_json(DOC_EXCHANGE_INFO)],
        "parse_server_time": [ok_json(DOC_SERVER_TIME)],
        "parse_mark_price": [ok_json(DOC_PREMIUM_INDEX)],
        "parse_mark_prices": [ok_json(DOC_PREMIUM_INDEX_ALL)],
        "parse_listen_key": [ok_json(DOC_LISTEN_KEY)],
        "parse_leverage": [ok_json(DOC_LEVERAGE)],
        "parse_countdown": [ok_json(DOC_COUNTDOWN)],
        "parse_code_ack": [ok_json(DOC_CANCEL_ALL)],
        "parse_position_mode": [{"dualSidePosition": True}],
        "parse_user_event": [
            ok_json(DOC_ORDER_TRADE_UPDATE),
            order_trade_fill(),
            ok_json(DOC_ACCOUNT_UPDATE),
            ok_json(DOC_MARGIN_CALL),
            ok_json(DOC_LISTEN_KEY_EXPIRED),
            ok_json(DOC_CONFIG_LEVERAGE),
            ok_json(DOC_CONFIG_MULTI_ASSETS),
            ok_json(DOC_TRADE_LITE),
            ok_json(DOC_ALGO_UPDATE),
            ok_json(DOC_GRID_UPDATE),
            {"stream": "pqia91ma19a5s61cv6a81va65sdf19v8", "data": order_trade_fill()},
        ],
    }
