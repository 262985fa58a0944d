"""Write the demo company's generated data files: catalog, customers with orders, reviews.

    python -m llmos.demo.generate        # rewrites llmos/demo/data/{catalog.json,customers.json,reviews.csv}

Seeded, so the files are the same on every run; they are committed, and this script only
documents how they were made. The policies (data/policies/*.md) are written by hand.
`review_labels()` gives the sentiment each review was written with: it is never saved
(the analysis specialist has to classify the reviews), but tests use it to check the classifier.
"""

from __future__ import annotations

import csv
import json
import random
from datetime import date, timedelta
from pathlib import Path

DATA = Path(__file__).parent / "data"
SEED = 7
FIRST_REVIEW = date(2025, 1, 1)
LAST_REVIEW = date(2025, 6, 30)
SPIKE_MONTH = (2025, 6)  # the planted spike of negative reviews: the last month of data

# --- catalog -------------------------------------------------------------------------------------
# Per category: kinds of item (noun, what it is for) and variants (adjective, what sets it apart, price factor).

CATEGORIES: dict[str, dict] = {
    "tents": dict(
        brand="Alder & Ridge", price=(180, 420),
        kinds=[("Backpacking Tent", "A two-person backpacking tent for long trail days."),
               ("Family Tent", "A roomy four-person tent with two doors and a vestibule for car camping."),
               ("Solo Shelter", "A trekking-pole shelter for one that packs smaller than a water bottle."),
               ("Four-Season Tent", "A dome tent built for snow loads and winter wind."),
               ("Hammock Tent", "A hammock with an integrated bug net and rain fly for forest camps.")],
        variants=[("Ultralight", "Silnylon fly and carbon poles keep it under 1 kg.", 1.3),
                  ("Storm", "Extra guy-out points and a full-coverage fly shrug off sideways rain.", 1.1)],
    ),
    "sleeping": dict(
        brand="Alder & Ridge", price=(60, 320),
        kinds=[("Down Sleeping Bag", "A mummy bag with 800-fill water-resistant goose down, comfort rating -5 C."),
               ("Synthetic Sleeping Bag", "A synthetic-fill bag that stays warm when damp, comfort rating 2 C."),
               ("Sleeping Quilt", "A hoodless quilt with pad straps for side sleepers who hate zippers."),
               ("Insulated Sleeping Pad", "An inflatable pad with R-value 4.2 for three-season ground cold."),
               ("Foam Sleeping Pad", "A closed-cell foam pad that cannot puncture, R-value 2.")],
        variants=[("Summit", "Cut for cold alpine nights with a draft collar.", 1.2),
                  ("Trail", "A lighter, roomier cut for summer trips.", 0.9)],
    ),
    "backpacks": dict(
        brand="Ridgeline", price=(45, 290),
        kinds=[("Hiking Daypack", "A 22-litre daypack with a hydration sleeve and hip-belt pockets."),
               ("Trekking Backpack", "A 65-litre pack with an adjustable torso and load lifters for week-long treks."),
               ("Ultralight Pack", "A frameless 40-litre pack of Dyneema for fast-and-light hikers."),
               ("Travel Backpack", "A 35-litre carry-on sized pack that opens like a suitcase."),
               ("Running Vest", "A 12-litre trail running vest with soft flasks on the chest.")],
        variants=[("Pro", "Reinforced base fabric and a ventilated mesh back panel.", 1.25),
                  ("Lite", "Stripped of extras to save weight.", 0.85)],
    ),
    "footwear": dict(
        brand="Ridgeline", price=(70, 240),
        kinds=[("Hiking Boot", "A mid-cut leather boot with a waterproof membrane and a stiff shank for rocky trails."),
               ("Trail Runner", "A low, grippy trail running shoe with a rock plate and quick-dry mesh."),
               ("Approach Shoe", "A sticky-rubber shoe for scrambling and the walk to the crag."),
               ("Winter Boot", "An insulated boot rated to -30 C with a removable felt liner."),
               ("Camp Sandal", "A strappy sandal for river crossings and evenings in camp.")],
        variants=[("Gore", "Waterproof and breathable for wet shoulder seasons.", 1.15),
                  ("Vent", "An airy upper for hot, dry trails.", 0.95)],
    ),
    "apparel": dict(
        brand="Alder & Ridge", price=(35, 380),
        kinds=[("Rain Jacket", "A three-layer waterproof shell with pit zips and a helmet-compatible hood."),
               ("Down Jacket", "A packable 700-fill down jacket for cold camps and belays."),
               ("Fleece Pullover", "A grid fleece midlayer that breathes on steep climbs."),
               ("Merino Base Layer", "A 200 g/m2 merino wool top that resists odour on multi-day trips."),
               ("Softshell Pants", "Stretch-woven hiking pants with a water-repellent finish.")],
        variants=[("Alpine", "Longer cut and reinforced shoulders for wearing under a pack.", 1.2),
                  ("Everyday", "A relaxed fit that works in town too.", 0.9)],
    ),
    "cooking": dict(
        brand="Emberline", price=(15, 180),
        kinds=[("Canister Stove", "A compact gas canister stove with a piezo igniter and a simmer valve."),
               ("Liquid Fuel Stove", "A multi-fuel stove that burns white gas or kerosene in deep cold."),
               ("Titanium Cook Pot", "A 900 ml titanium pot with a lid that doubles as a frying pan."),
               ("Camp Kitchen Set", "Nesting pots, plates and mugs for four people in one bag."),
               ("Integrated Cook System", "A stove with a heat-exchanger pot that boils a litre in three minutes.")],
        variants=[("Windproof", "A built-in windscreen keeps the flame steady on exposed ridges.", 1.2),
                  ("Compact", "Everything nests inside the pot to save pack space.", 0.9)],
    ),
    "lighting": dict(
        brand="Emberline", price=(12, 110),
        kinds=[("Headlamp", "A rechargeable headlamp with a red night mode and a lock-out switch."),
               ("Camp Lantern", "A collapsible LED lantern that lights a whole picnic table."),
               ("Solar Charger", "A folding solar panel that charges phones and headlamps over USB."),
               ("Power Bank", "A rugged 20,000 mAh battery bank for multi-day trips."),
               ("String Lights", "USB camp string lights that hang from a tent ceiling.")],
        variants=[("Bright", "Up to 900 lumens for night hiking and route finding.", 1.3),
                  ("Mini", "Pocket sized and under 60 g.", 0.7)],
    ),
    "water": dict(
        brand="Ridgeline", price=(10, 120),
        kinds=[("Squeeze Filter", "A hollow-fibre water filter that screws onto soft bottles."),
               ("Gravity Filter", "A 6-litre gravity filter that cleans water for a whole group while you set up camp."),
               ("Purifier Bottle", "A bottle with a purifier cartridge that removes viruses for travel abroad."),
               ("Insulated Bottle", "A vacuum-insulated steel bottle that keeps drinks hot for 12 hours."),
               ("Hydration Reservoir", "A 3-litre bladder with a bite valve and a wide opening for cleaning.")],
        variants=[("Expedition", "Field-cleanable and rated for 4,000 litres.", 1.3),
                  ("Travel", "Small enough for a carry-on.", 0.85)],
    ),
    "climbing": dict(
        brand="Alder & Ridge", price=(25, 260),
        kinds=[("Climbing Harness", "A sport climbing harness with four gear loops and adjustable leg loops."),
               ("Dynamic Rope", "A 9.5 mm, 60-metre dynamic rope with a dry treatment."),
               ("Climbing Helmet", "A foam-and-shell helmet certified for rockfall and top impacts."),
               ("Belay Device", "An assisted-braking belay device for single ropes."),
               ("Chalk Bag", "A chalk bag with a brush holder and a drawstring closure.")],
        variants=[("Alpine", "Light enough for long mountain routes.", 1.2),
                  ("Gym", "Built for indoor sessions and frequent use.", 0.85)],
    ),
    "furniture": dict(
        brand="Ridgeline", price=(30, 200),
        kinds=[("Camp Chair", "A folding chair with a high back and a cup holder for the campfire."),
               ("Camp Table", "A roll-top aluminium table that sets up in a minute."),
               ("Camp Cot", "A raised cot that keeps you off cold, wet ground."),
               ("Cooler", "A rotomoulded cooler that keeps ice for five days."),
               ("Camp Hammock", "A parachute-nylon hammock with tree-friendly straps.")],
        variants=[("Deluxe", "Padded and wider for long evenings.", 1.3),
                  ("Packable", "Folds down small enough for a backpack.", 0.8)],
    ),
}
SPECS = [
    "Weighs {w} g.", "Backed by our repair shop.", "Made with recycled fabric where possible.",
    "Tested by our staff in the Cascades.", "Comes with a stuff sack.", "Reviewers praise its simple design.",
]


def make_catalog(rng: random.Random) -> list[dict]:
    items = []
    for category, spec in CATEGORIES.items():
        low, high = spec["price"]
        for kind, use in spec["kinds"]:
            for adjective, feature, factor in spec["variants"]:
                price = round(rng.uniform(low, high) * factor) - 0.05
                extra = rng.choice(SPECS).format(w=rng.randrange(80, 2400, 10))
                items.append(dict(
                    id=f"P{len(items) + 1:03d}", name=f"{spec['brand']} {adjective} {kind}",
                    category=category, price=round(price, 2), description=f"{use} {feature} {extra}",
                ))
    return items


# --- customers and orders ------------------------------------------------------------------------

FIRST = ["Maya", "Jonas", "Priya", "Diego", "Hannah", "Kenji", "Amara", "Lukas", "Sofia", "Owen",
         "Leila", "Mateo", "Ingrid", "Tariq", "Chloe", "Ravi", "Elena", "Samuel", "Aiko", "Noah"]
LAST = ["Lindqvist", "Berg", "Raman", "Alvarez", "Schulz", "Tanaka", "Okafor", "Weber", "Rossi", "Brennan",
        "Haddad", "Cruz", "Nilsen", "Aziz", "Martin", "Iyer", "Petrova", "Osei", "Mori", "Fischer"]
# Each customer leans towards a few categories, so that purchase histories say something about taste.
TASTES = [["tents", "sleeping", "cooking"], ["climbing", "apparel"], ["backpacks", "water", "footwear"],
          ["furniture", "cooking", "lighting"], ["footwear", "apparel", "backpacks"]]


def make_customers(rng: random.Random, catalog: list[dict]) -> list[dict]:
    by_category: dict[str, list[dict]] = {}
    for item in catalog:
        by_category.setdefault(item["category"], []).append(item)
    customers, order_no = [], 1001
    for n in range(20):
        taste = TASTES[n % len(TASTES)]
        customer = dict(
            id=f"C{n + 1:03d}", name=f"{FIRST[n]} {LAST[n]}",
            email=f"{FIRST[n].lower()}.{LAST[n].lower()}@example.com",
            tier="club" if n % 3 == 0 else "standard", joined=str(date(2023, 1, 15) + timedelta(days=37 * n)),
            orders=[],
        )
        for k in range(rng.randint(1, 4)):
            day = date(2024, 9, 1) + timedelta(days=rng.randrange(0, 300))
            picks = rng.sample([i for c in taste for i in by_category[c]], rng.randint(1, 3))
            status = "delivered" if day < date(2025, 6, 10) else rng.choice(["shipped", "processing"])
            customer["orders"].append(dict(
                id=f"O{order_no}", date=str(day), status=status, note="",
                items=[dict(item_id=i["id"], quantity=1, price=i["price"]) for i in picks],
            ))
            order_no += 1
        customer["orders"].sort(key=lambda o: o["date"])
        customers.append(customer)
    _plant_cases(customers, catalog)
    return customers


def _plant_cases(customers: list[dict], catalog: list[dict]) -> None:
    """The cases the demo is about: a damaged stove (a safety item), a damaged expensive tent, a return."""
    item = {i["name"]: i for i in catalog}
    stove = item["Emberline Windproof Canister Stove"]
    tent = item["Alder & Ridge Storm Backpacking Tent"]
    maya, hannah, owen = customers[0], customers[4], customers[9]
    maya["orders"].append(dict(
        id="O1090", date="2025-06-18", status="damaged",
        note="Delivered 2025-06-21. Customer reports the box was crushed and the stove's valve is bent.",
        items=[dict(item_id=stove["id"], quantity=1, price=stove["price"])],
    ))
    hannah["orders"].append(dict(
        id="O1091", date="2025-06-02", status="damaged",
        note="Delivered 2025-06-06. One tent pole arrived snapped and the fly has a tear.",
        items=[dict(item_id=tent["id"], quantity=1, price=tent["price"])],
    ))
    owen["orders"][0]["status"] = "returned"
    owen["orders"][0]["note"] = "Returned for a refund; wrong size."


# --- reviews -------------------------------------------------------------------------------------
# Sentences by sentiment and topic; a review is one or two of them about one product.

REVIEW_TEXT = {
    "positive": {
        "quality": ["The {p} is built like a tank and survived a week of rain.", "Superb stitching and zippers on the {p}.",
                    "Still going strong after two seasons, the {p} is excellent.", "Love my {p}, it works perfectly every time."],
        "shipping": ["The {p} arrived two days early and well packed.", "Fast delivery, my {p} was here before the weekend."],
        "value": ["Great value for money, the {p} feels twice its price.", "Happy with the price of the {p}, a bargain."],
        "comfort": ["The {p} fits beautifully and is comfortable all day.", "So comfortable, I forgot I had the {p} on."],
        "service": ["Support sorted out my {p} question in minutes, very friendly.", "Customer service was kind and helpful about my {p}."],
    },
    "neutral": {
        "quality": ["The {p} does what it says, nothing more.", "The {p} is fine for occasional trips."],
        "shipping": ["The {p} arrived on the expected date.", "Delivery of the {p} took about a week, as stated."],
        "value": ["The {p} is priced about the same as elsewhere.", "Average price for a {p} of this kind."],
        "comfort": ["The {p} fits as expected, standard sizing.", "Comfort of the {p} is okay for short days."],
        "service": ["I asked support about the {p} and got a standard answer.", "Support replied about the {p} within two days."],
    },
    "negative": {
        "quality": ["The {p} broke on the second trip, very disappointed.", "Cheap materials, the {p} started leaking right away.",
                    "The {p} arrived damaged and the valve was bent, unusable.", "Terrible, the {p} fell apart within a month."],
        "shipping": ["My {p} arrived two weeks late and the box was crushed.", "The {p} was lost in transit, awful delivery."],
        "value": ["Way overpriced, the {p} is not worth the money.", "Poor value, the {p} costs too much for what it is."],
        "comfort": ["The {p} gave me blisters and hurts after an hour.", "Uncomfortable, the {p} digs into my shoulders."],
        "service": ["Support ignored my emails about the {p}, frustrating.", "Rude customer service when the {p} failed."],
    },
}
TAILS = {"positive": ["Would buy again.", "Highly recommended.", ""], "neutral": ["", "It is okay."],
         "negative": ["Returning it.", "Avoid.", "Not buying again."]}


def make_reviews(rng: random.Random, catalog: list[dict]) -> tuple[list[dict], list[str]]:
    """About 60 reviews a month; in the spike month half are negative (many about the stove and shipping)."""
    rows, labels = [], []
    stove = next(i for i in catalog if i["name"] == "Emberline Windproof Canister Stove")
    day = FIRST_REVIEW
    while day <= LAST_REVIEW:
        spike = (day.year, day.month) == SPIKE_MONTH
        for _ in range(rng.choice([1, 2, 2, 3])):
            weights = [0.30, 0.20, 0.50] if spike else [0.58, 0.26, 0.16]
            sentiment = rng.choices(["positive", "neutral", "negative"], weights)[0]
            product = stove if spike and sentiment == "negative" and rng.random() < 0.4 else rng.choice(catalog)
            topic = rng.choice(["quality", "shipping"] if spike and sentiment == "negative" else list(REVIEW_TEXT[sentiment]))
            text = rng.choice(REVIEW_TEXT[sentiment][topic]).format(p=product["name"])
            text = f"{text} {rng.choice(TAILS[sentiment])}".strip()
            rows.append(dict(review_id=f"R{len(rows) + 1:04d}", date=str(day), product_id=product["id"], text=text))
            labels.append(sentiment)
        day += timedelta(days=1)
    return rows, labels


def generate() -> tuple[list[dict], list[dict], list[dict], list[str]]:
    rng = random.Random(SEED)
    catalog = make_catalog(rng)
    customers = make_customers(rng, catalog)
    reviews, labels = make_reviews(rng, catalog)
    return catalog, customers, reviews, labels


def review_labels() -> list[str]:
    """The sentiment each review in reviews.csv was written with, in file order (for tests, never shipped)."""
    return generate()[3]


def write(data: Path = DATA) -> None:
    catalog, customers, reviews, _ = generate()
    data.mkdir(parents=True, exist_ok=True)
    (data / "catalog.json").write_text(json.dumps(catalog, indent=1) + "\n")
    (data / "customers.json").write_text(json.dumps(customers, indent=1) + "\n")
    with open(data / "reviews.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=["review_id", "date", "product_id", "text"])
        writer.writeheader()
        writer.writerows(reviews)
    print(f"{len(catalog)} items, {len(customers)} customers, {len(reviews)} reviews -> {data}")


if __name__ == "__main__":
    write()
