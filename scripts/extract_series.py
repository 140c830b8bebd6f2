#!/usr/bin/env python3
"""Writes the real series of examples/series/ from the datasets that ship inside statsmodels.

    python3 -m venv /tmp/v && /tmp/v/bin/pip install statsmodels
    /tmp/v/bin/python scripts/extract_series.py examples/series

Each file has two columns, `time` and `value`, one row per point, oldest first.
"""
import sys
from pathlib import Path

import pandas as pd
import statsmodels.api as sm

out = Path(sys.argv[1] if len(sys.argv) > 1 else "examples/series")
out.mkdir(parents=True, exist_ok=True)


def write(name, time, value):
    df = pd.DataFrame({"time": list(time), "value": list(value)})
    assert df["value"].notna().all(), name
    df.to_csv(out / f"{name}.csv", index=False)
    print(name, len(df))


# Yearly sunspot numbers 1700-2008 (statsmodels.datasets.sunspots).
d = sm.datasets.sunspots.load_pandas().data
write("sunspots", d["YEAR"].astype(int), d["SUNACTIVITY"])

# Yearly flow of the Nile at Aswan 1871-1970, 10^8 m^3 (statsmodels.datasets.nile).
d = sm.datasets.nile.load_pandas().data
write("nile", d["year"].astype(int), d["volume"])

# Mauna Loa CO2 (ppm): the weekly series of statsmodels.datasets.co2, monthly means, gaps filled forward.
d = sm.datasets.co2.load_pandas().data["co2"]
m = d.resample("MS").mean().ffill()
write("co2", m.index.strftime("%Y-%m"), m.round(3))

# El Nino sea surface temperatures 1950-2010, one row per month (statsmodels.datasets.elnino, melted).
d = sm.datasets.elnino.load_pandas().data
months = ["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"]
rows = [(f"{int(r.YEAR)}-{i + 1:02d}", getattr(r, mo)) for r in d.itertuples() for i, mo in enumerate(months)]
write("elnino", [t for t, _ in rows], [v for _, v in rows])

# US real GDP, quarterly 1959Q1-2009Q3, billions of chained 2005 dollars (statsmodels.datasets.macrodata).
d = sm.datasets.macrodata.load_pandas().data
write("realgdp", [f"{int(y)}Q{int(q)}" for y, q in zip(d["year"], d["quarter"])], d["realgdp"])
