"""Write a deterministic price list of building materials: ``materials.csv``, Russian names, a few thousand rows.

The same ``--rows`` and ``--seed`` always give the same file, byte for
byte. Prices are written the way price lists write them (``1 250,00 ₽``,
``420 руб.``, ``89,90``), and about one row in a hundred says
``договорная`` or ``по запросу`` instead of a number: the handler fails
those, so a run has failed records to show and retry.

    python generate.py --rows 3000 --out materials.csv
"""

from __future__ import annotations

import argparse
import csv
import random
from pathlib import Path

MATERIALS: list[tuple[str, str, list[str], list[str], tuple[int, int]]] = [
    # (category, base name, variants, packaging, price range in roubles)
    (
        "цемент",
        "Цемент",
        ["М400 Д20", "М500 Д0", "М500 Д20", "ПЦ 400", "белый М600"],
        ["мешок 25 кг", "мешок 50 кг"],
        (280, 900),
    ),
    ("сыпучие", "Песок", ["речной", "карьерный", "мытый", "строительный"], ["мешок 40 кг", "м³", "т"], (90, 1400)),
    (
        "сыпучие",
        "Щебень гранитный",
        ["фракция 5-20", "фракция 20-40", "фракция 40-70"],
        ["мешок 40 кг", "м³", "т"],
        (150, 2600),
    ),
    (
        "стеновые",
        "Кирпич",
        ["керамический полнотелый", "силикатный", "облицовочный красный", "шамотный"],
        ["шт", "поддон"],
        (12, 18000),
    ),
    ("стеновые", "Газобетонный блок", ["D500 600×300×200", "D400 600×250×300"], ["шт", "м³"], (180, 6900)),
    ("металл", "Арматура А500С", ["Ø8", "Ø10", "Ø12", "Ø14", "Ø16"], ["м", "т"], (25, 78000)),
    ("металл", "Профнастил", ["С8 оцинкованный", "С20 RAL 3005", "НС35 RAL 6005"], ["лист", "м²"], (290, 1250)),
    ("листовые", "Гипсокартон", ["ГКЛ 12,5 мм", "ГКЛВ 12,5 мм", "ГКЛО 12,5 мм"], ["лист 2500×1200"], (320, 780)),
    (
        "листовые",
        "Фанера",
        ["ФК 10 мм", "ФСФ 18 мм", "ламинированная 21 мм"],
        ["лист 1525×1525", "лист 2440×1220"],
        (650, 4200),
    ),
    (
        "пиломатериалы",
        "Доска обрезная",
        ["хвоя 25×100", "хвоя 50×150", "лиственница 40×150"],
        ["м³", "шт 6 м"],
        (180, 32000),
    ),
    ("пиломатериалы", "Брус", ["100×100", "150×150", "клеёный 200×200"], ["м³", "шт 6 м"], (700, 65000)),
    (
        "утеплитель",
        "Утеплитель",
        ["минвата 50 мм", "минвата 100 мм", "пенополистирол ППС-25", "экструдированный XPS"],
        ["упаковка", "м³"],
        (450, 7800),
    ),
    (
        "отделка",
        "Шпатлёвка",
        ["гипсовая финишная", "цементная стартовая", "полимерная"],
        ["мешок 20 кг", "ведро 5 кг"],
        (250, 1900),
    ),
    (
        "отделка",
        "Краска",
        ["ВД-АК белая", "фасадная акриловая", "алкидная эмаль ПФ-115"],
        ["ведро 10 л", "банка 2,7 л"],
        (390, 6500),
    ),
    (
        "отделка",
        "Плитка керамическая",
        ["30×60 матовая", "60×60 керамогранит", "20×30 глянцевая"],
        ["м²", "упаковка"],
        (590, 3900),
    ),
    (
        "крепёж",
        "Саморезы",
        ["по дереву 3,5×35", "по металлу 4,2×16", "кровельные 4,8×35"],
        ["упаковка 200 шт", "кг"],
        (140, 950),
    ),
    ("крепёж", "Гвозди строительные", ["2,5×50", "3×70", "4×100"], ["кг", "ящик 5 кг"], (120, 1100)),
]
UNPRICED = ["договорная", "по запросу", "уточняйте"]


def price_text(rng: random.Random, low: int, high: int) -> str:
    """A price as a price list writes it, in one of four styles; about 1% say no number at all."""
    if rng.random() < 0.01:
        return rng.choice(UNPRICED)
    value = round(rng.uniform(low, high), 2)
    style = rng.randrange(4)
    whole, cents = divmod(round(value * 100), 100)
    grouped = f"{whole:,}".replace(",", "\u00a0")  # a no-break space between thousands
    if style == 0:
        return f"{grouped},{cents:02d} ₽"
    if style == 1:
        return f"{whole} руб."
    if style == 2:
        return f"{whole},{cents:02d}"
    return f"{grouped} р."


def rows(count: int, seed: int) -> list[dict[str, str]]:
    rng = random.Random(seed)
    made = []
    for number in range(1, count + 1):
        category, base, variants, packaging, (low, high) = rng.choice(MATERIALS)
        made.append(
            {
                "sku": f"M-{number:05d}",
                "name": f"{base} {rng.choice(variants)}",
                "unit": rng.choice(packaging),
                "category": category,
                "price": price_text(rng, low, high),
            }
        )
    return made


def write(path: Path, count: int, seed: int = 2026) -> int:
    """Write ``count`` rows to ``path``; returns how many."""
    with path.open("w", encoding="utf-8", newline="") as file:
        writer = csv.DictWriter(file, fieldnames=["sku", "name", "unit", "category", "price"])
        writer.writeheader()
        writer.writerows(rows(count, seed))
    return count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=3000)
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--out", type=Path, default=Path("materials.csv"))
    arguments = parser.parse_args()
    write(arguments.out, arguments.rows, arguments.seed)
    print(f"{arguments.rows} materials written to {arguments.out}")


if __name__ == "__main__":
    main()
