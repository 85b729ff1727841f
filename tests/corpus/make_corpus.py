"""Writes the corpus files of tests/corpus/ (the committed files are the corpus; this script is how they
were made, so the binary and non-UTF-8 ones can be changed without an editor re-encoding them).

    python tests/corpus/make_corpus.py
"""

import shutil
from pathlib import Path

ROOT = Path(__file__).resolve().parent
for sub in ("reference", "canonical", "adapters"):
    shutil.rmtree(ROOT / sub, ignore_errors=True)


def w(rel: str, content):
    p = ROOT / rel
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_bytes(content if isinstance(content, bytes) else content.encode())


w(
    "reference/products/products.csv",
    """sku,name,category,unit_cost,list_price,weight_kg,supplier,lead_time_days
A1,Mug,kitchen,3.00,9.90,0.4,S1,7
B2,Tee,apparel,4.50,19.00,0.2,S2,14
""",
)
w(
    "reference/customers/customers.csv",
    """customer_id,first_seen,region,email,phone,name
c1,2023-12-01,Beijing,ann@example.com,+86 138 0000 0001,Ann Li
c2,2023-12-02,Shanghai,bob@example.com,+86 138 0000 0002,Bob Wu
""",
)

OH = "order_id,line_no,customer_id,sku,quantity,unit_price,currency,discount,order_ts,channel,region,status\n"


def o(
    oid,
    qty="2",
    price="9.90",
    cur="CNY",
    ts="2024-01-01 10:00:00",
    cust="c1",
    sku="A1",
    status="completed",
    line="1",
):
    return f"{oid},{line},{cust},{sku},{qty},{price},{cur},0,{ts},web,Beijing,{status}\n"


D1 = "orders/orders_2024-01-01.csv"
C = "canonical/"

w(C + "truncated_line/" + D1, OH + o("o1") + "o2,1,c1,A1,2,9.90\n" + o("o3"))
w(
    C + "unterminated_quote/" + D1,
    OH + o("o1") + 'o2,1,c1,A1,2,9.90,CNY,0,2024-01-01 10:00:00,web,"Beijing,completed\n' + o("o3") + o("o4"),
)
w(C + "extra_field_in_row/" + D1, OH + o("o1") + o("o2").replace("\n", ",surplus\n") + o("o3"))
w(C + "wrong_delimiter/" + D1, (OH + o("o1") + o("o2")).replace(",", ";"))
w(
    C + "missing_required_column/" + D1,
    OH.replace("sku,", "") + o("o1").replace("A1,", "") + o("o2").replace("A1,", ""),
)
w(
    C + "missing_optional_column/" + D1,
    OH.replace("channel,", "") + o("o1").replace("web,", "") + o("o2").replace("web,", ""),
)
w(
    C + "extra_and_unnamed_columns/" + D1,
    OH.replace("\n", ",note,\n") + o("o1").replace("\n", ",gift wrap,\n") + o("o2").replace("\n", ",,\n"),
)
w(
    C + "renamed_headers/" + D1,
    "OrderID,Line,CustomerID,SKU,Qty,Price,Currency,Discount,OrderDate,Channel,Region,Status\n"
    + o("o1")
    + o("o2"),
)
w(C + "duplicate_header_column/" + D1, OH.replace("\n", ",sku\n") + o("o1").replace("\n", ",B2\n"))
w(C + "header_only/" + D1, OH)
w(C + "empty_file/" + D1, b"")
w(
    C + "binary_named_csv/" + D1,
    b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x10\x00\x00\x00\x10\x08\x06",
)
w(
    C + "latin1_in_utf8_file/" + D1,
    (OH + o("o1")).encode() + o("o2").replace("Beijing", "Zürich").encode("latin-1") + o("o3").encode(),
)
w(C + "utf8_bom/" + D1, ("\ufeff" + OH + o("o1") + o("o2")).encode("utf-8"))
w(
    C + "crlf_and_padding/" + D1,
    (
        OH
        + o("o1")
        + " o2 , 1 , c1 , A1 , 2 , 9.90 , CNY , 0 , 2024-01-01 10:00:00 , web , Beijing , completed \n"
    ).replace("\n", "\r\n"),
)
w(
    C + "thousands_separator/" + D1,
    OH + o("o1", price='"1,234.50"') + o("o2", qty='"1,000"') + o("o3", price="1234.50"),
)
w(C + "comma_decimal/" + D1, OH + o("o1", price='"9,90"') + o("o2", price="9,90") + o("o3"))
w(
    C + "numbers_rounded_by_cast/" + D1,
    OH + o("o1", qty="2.5") + o("o2", price="9.999") + o("o3", qty="1e1") + o("o4", qty="2.0"),
)
w(
    C + "three_date_formats/" + D1,
    OH
    + o("o1", ts="2024-01-01 10:00:00")
    + o("o2", ts="01/02/2024 10:00")
    + o("o3", ts="1 Jan 2024 10:00")
    + o("o4", ts="2024-01-01T10:00:00")
    + o("o5", ts="2024-01-01 10:00 PM"),
)
w(
    C + "timezones/" + D1,
    OH
    + o("o1", ts="2024-01-01T02:00:00Z")
    + o("o2", ts="2024-01-01 11:00:00+09:00")
    + o("o3", ts="2024-01-01 20:00:00-05:00")
    + o("o4", ts="2024-01-01 10:00:00 CET")
    + o("o5", ts="2024-01-01 10:00:00 +0800")
    + o("o6", ts="2024-01-01 10:00+09")
    + o("o7", ts="2024-01-01 9:00 CET"),
)
w(
    C + "non_positive_quantity_and_price/" + D1,
    OH + o("o1", qty="-1") + o("o2", qty="0") + o("o3", price="0") + o("o4", price="-9.90") + o("o5"),
)
w(
    C + "other_currency/" + D1,
    OH + o("o1", cur="GBP") + o("o2", cur="USD") + o("o3", cur="cny") + o("o4", price="¥9.90"),
)
w(C + "unknown_sku_and_customer/" + D1, OH + o("o1", sku="ZZ9") + o("o2", cust="c99") + o("o3", cust=""))
w(C + "duplicate_key_in_file/" + D1, OH + o("o1") + o("o2") + o("o1", qty="3"))
w(C + "duplicate_key_across_files/" + D1, OH + o("o1") + o("o2"))
w(C + "duplicate_key_across_files/orders/orders_2024-01-01_late.csv", OH + o("o2") + o("o3"))
w(C + "same_file_delivered_twice/" + D1, OH + o("o1") + o("o2") + o("o3"))
w(C + "same_file_delivered_twice/orders/orders_2024-01-01_resent.csv", OH + o("o1") + o("o2") + o("o3"))
w(C + "duplicate_key_across_days/" + D1, OH + o("o1") + o("o2"))
w(
    C + "duplicate_key_across_days/orders/orders_2024-01-02.csv",
    OH + o("o2", ts="2024-01-02 09:00:00") + o("o3", ts="2024-01-02 09:00:00"),
)
w(C + "future_timestamp/" + D1, OH + o("o1") + o("o2", ts="2099-01-01 10:00:00"))
w(
    C + "enum_values/" + D1,
    OH + o("o1", status="Completed") + o("o2", status="refund") + o("o3", status="returned"),
)
w(C + "required_value_empty/" + D1, OH + o("o1", qty="") + o("o2", sku="") + o("o3"))

RH = "review_id,order_id,customer_id,sku,score,scale,text,created_ts\n"
R1 = "reviews/reviews_2024-01-01.csv"
w(
    C + "gbk_encoded_file/" + R1,
    (
        RH + "r1,o1,c1,A1,5,stars_1_5,很好 质量不错,2024-01-01 10:00:00\n"
        "r2,o1,c1,B2,4,stars_1_5,还行,2024-01-01 11:00:00\nr3,o2,c2,A1,5,stars_1_5,ok,2024-01-01 12:00:00\n"
    ).encode("gbk"),
)
w(
    C + "very_long_text/" + R1,
    RH
    + "r1,o1,c1,A1,5,stars_1_5,"
    + "great " * 1000
    + ",2024-01-01 10:00:00\n"
    + "r2,o1,c1,B2,4,stars_1_5,fine,2024-01-01 11:00:00\n",
)
w(
    C + "formula_injection/" + R1,
    RH
    + "r1,o1,c1,A1,5,stars_1_5,\"=cmd|' /C calc'!A0\",2024-01-01 10:00:00\n"
    + "r2,o1,c1,B2,1,stars_1_5,+SUM(1+1)*cmd|' /C notepad'!A0,2024-01-01 11:00:00\n"
    + "r3,o2,c2,A1,3,stars_1_5,@SUM(A1:A9),2024-01-01 12:00:00\n"
    + 'r4,o2,c2,"=HYPERLINK(""http://x.example"",""y"")",4,stars_1_5,ok,2024-01-01 13:00:00\n',
)
w(
    C + "multiline_text_keeps_row_numbers/" + R1,
    RH
    + 'r1,o1,c1,A1,5,stars_1_5,"two\nlines",2024-01-01 10:00:00\n'
    + "r2,o1,c1,B2,5,stars_1_5\n"
    + 'r3,o2,c2,A1,4,stars_1_5,"three\nphysical\nlines",2024-01-01 11:00:00\n'
    + "r4,o2,c2,B2,9,stars_1_5,ok,2024-01-01 12:00:00\n",
)
w(
    C + "score_out_of_scale/" + R1,
    RH + "r1,o1,c1,A1,0,stars_1_5,,2024-01-01 10:00:00\nr2,o1,c1,A1,11,nps_0_10,,2024-01-01 10:00:00\n"
    "r3,o1,c1,A1,0,nps_0_10,,2024-01-01 10:00:00\nr4,o1,c1,A1,3,stars_5,,2024-01-01 10:00:00\n",
)

w(
    C + "non_positive_competitor_price/competitor_prices/competitor_prices_2024-01-01.csv",
    "date,sku,competitor,price\n2024-01-01,A1,jd,0\n2024-01-01,B2,jd,-3.50\n2024-01-01,A1,tmall,9.50\n",
)
w(
    C + "date_formats_on_date_column/competitor_prices/competitor_prices_2024-01-01.csv",
    "date,sku,competitor,price\n2024-01-01,A1,jd,9.50\n01.01.2024,B2,jd,18.00\n20240101,A1,tmall,9.50\n",
)
w(
    C + "negative_stock/inventory/inventory_2024-01-01.csv",
    "date,sku,warehouse,on_hand,on_order\n2024-01-01,A1,sh,-4,0\n2024-01-01,B2,sh,10,-1\n2024-01-01,ZZ9,sh,5,0\n2024-01-01,A1,bj,7,\n",
)
w(
    C + "unknown_refs_in_traffic/traffic/traffic_2024-01-01.csv",
    "session_id,event_ts,customer_id,channel,device,event,sku,order_id\n"
    "s1,2024-01-01 10:00:00,c99,organic,mobile,view,A1,\ns1,2024-01-01 10:01:00,,organic,mobile,view,ZZ9,\n"
    "s2,2024-01-01 10:02:00,,direct,desktop,view,,\ns2,2024-01-01 10:03:00,c2,direct,desktop,purchase,A1,o9\n",
)
w(
    C + "shipment_values/shipments/shipments_2024-01-01.csv",
    "shipment_id,order_id,carrier,mode,origin,destination_region,distance_km,weight_kg,packaging,packaging_kg,shipped_ts,promised_ts,delivered_ts,cost\n"
    "sh1,o1,ZTO,road,sh,Beijing,0,1.0,corrugated_board,0.1,2024-01-01 10:00:00,2024-01-03 10:00:00,2024-01-02 10:00:00,5.00\n"
    "sh2,o2,ZTO,road,sh,Beijing,1200,1.0,corrugated_board,0.1,2024-01-01 10:00:00,2024-01-03 10:00:00,2023-12-31 10:00:00,5.00\n"
    "sh3,o3,ZTO,teleport,sh,Beijing,1200,1.0,corrugated_board,0.1,2024-01-01 10:00:00,2024-01-03 10:00:00,,5.00\n"
    "sh4,o4,ZTO,road,sh,Beijing,1200,1.0,corrugated_board,0.1,2024-01-01 10:00:00,2024-01-03 10:00:00,,5.00\n",
)
w(
    C + "duplicate_customer_in_snapshot/customers/customers.csv",
    "customer_id,first_seen,region,email,phone,name\nc1,2023-12-01,Beijing,ann@example.com,+86 138 0000 0001,Ann Li\n"
    "c2,2023-12-02,Shanghai,bob@example.com,,Bob Wu\nc1,2023-12-05,Tianjin,ann.li@example.com,,Ann Li\n",
)

# ---------------------------------------------------------------- real-format adapters
SH = (
    "Name,Email,Financial Status,Currency,Subtotal,Discount Amount,Created at,Lineitem quantity,Lineitem name,"
    "Lineitem price,Lineitem sku,Shipping Province,Shipping Country,Cancelled at,Vendor\n"
)


def s(
    name,
    email="ann@example.com",
    cur="CNY",
    ts="2024-03-01 10:00:00 +0800",
    qty="1",
    item="Mug",
    price="10.00",
    sku="M1",
):
    return f"{name},{email},paid,{cur},,0.00,{ts},{qty},{item},{price},{sku},Zhejiang,CN,,Studio A\n"


A = "adapters/"
w(
    A + "shopify/latin1_export/orders_export.csv",
    (
        SH + s("#1", item="Café Mug") + s("#2", email="bob@example.com", item="Crème brûlée set", sku="C2")
    ).encode("cp1252"),
)
w(
    A + "shopify/gbk_export/orders_export.csv",
    (SH + s("#1", item="青花瓷茶杯") + s("#2", email="bob@example.com", item="茶叶罐", sku="T2")).encode(
        "gbk"
    ),
)
w(A + "shopify/binary_export/orders_export.csv", b"PK\x03\x04\x14\x00\x06\x00\x08\x00\x00\x00!\x00")
w(A + "shopify/empty_export/orders_export.csv", b"")
w(A + "shopify/header_only_export/orders_export.csv", SH)
w(A + "shopify/renamed_headers/orders_export.csv", SH.replace("Lineitem price", "Item Price") + s("#1"))
w(
    A + "shopify/bad_values/orders_export.csv",
    SH
    + s("#1")
    + s("#2", price='"10,50"')
    + s("#3", price='"1,234.00"')
    + s("#4", qty="-1")
    + s("#5", ts="01/03/2024 10:00")
    + s("#6", cur="USD")
    + s("#7", item="=cmd|' /C calc'!A0", sku="X7")
    + s("#8", ts="2024-03-01 10:00:00 +0800", email=""),
)
w(
    A + "ga4/broken_events/events.jsonl",
    '{"event_date": "20240301", "event_timestamp": "1709258430000000", "event_name": "view_item", "user_pseudo_id": "1.1", '
    '"traffic_source": {"medium": "organic"}, "device": {"category": "mobile"}, "event_params": [{"key": "ga_session_id", '
    '"value": {"int_value": 1709258400}}], "items": [{"item_id": "M1"}]}\n'
    '{"event_date": "20240301", "event_timestamp": "17092584\n'
    '{"event_date": "20240301", "event_timestamp": "1709258440000000", "event_name": "view_item", "traffic_source": {}, '
    '"device": {"category": "mobile"}, "items": [{"item_id": "M1"}]}\n'
    '{"event_date": "20240301", "event_timestamp": "1709258450000000", "event_name": "scroll", "user_pseudo_id": "1.1", '
    '"event_params": [{"key": "ga_session_id", "value": {"int_value": 1709258400}}]}\n',
)
RETAIL_H = "InvoiceNo,StockCode,Description,Quantity,InvoiceDate,UnitPrice,CustomerID,Country\n"
w(
    A + "online_retail/bad_lines/retail.csv",
    RETAIL_H
    + "536365,85123A,WHITE HANGING HEART T-LIGHT HOLDER,6,12/1/2010 8:26,2.55,17850.0,United Kingdom\n"
    + "536365,22633,\"=cmd|' /C calc'!A0\",6,12/1/2010 8:26,1.85,17850.0,United Kingdom\n"
    + '536365,22634,HAND WARMER,6,12/1/2010 8:26,"1,85",17850.0,United Kingdom\n'
    + '536365,22635,HAND WARMER B,"1,200",12/1/2010 8:26,1.85,17850.0,United Kingdom\n'
    + "536365,85123A,WHITE HANGING HEART T-LIGHT HOLDER,6,12/1/2010 8:26,2.55,17850.0,United Kingdom\n"
    + "536366,22636,FREE SAMPLE,1,12/1/2010 8:28,0,17850.0,United Kingdom\n"
    + "536366,POST,POSTAGE,1,12/1/2010 8:28,18.00,17850.0,United Kingdom\n"
    + "536366,22637,TRUNCATED\n",
)
w(
    A + "online_retail/semicolon_export/retail.csv",
    (
        RETAIL_H
        + "536365,85123A,WHITE HANGING HEART T-LIGHT HOLDER,6,12/1/2010 8:26,2.55,17850.0,United Kingdom\n"
    ).replace(",", ";"),
)
# The same GBK export, landed without declaring its encoding (a known gap, see the test's xfail).
shutil.copytree(ROOT / "adapters/shopify/gbk_export", ROOT / "adapters/shopify/gbk_undeclared")
print(
    f"wrote {sum(1 for p in ROOT.rglob('*') if p.is_file() and p.suffix != '.py')} corpus files under {ROOT}"
)
