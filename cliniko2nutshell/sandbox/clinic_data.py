"""Static material for the synthetic clinic: names, places, clinical phrases and the practice's catalogue.

Everything here is invented. Patient e-mail domains are reserved example domains (RFC 2606), so no generated
address can reach a real person. The ordinary name pools are plain ASCII on purpose: the generator plants
non-ASCII and right-to-left names only as recorded hard cases, so `meta.hard_cases` lists all of them.
"""

from __future__ import annotations


def _words(text: str) -> tuple[str, ...]:
    return tuple(text.split())


FEMALE_FIRST_NAMES = _words(
    "Olivia Charlotte Amelia Isla Mia Ava Grace Chloe Sophie Ella Ruby Harper Zoe Lily Evie Matilda Sienna Willow "
    "Emily Hannah Lucy Georgia Sarah Jessica Rebecca Laura Megan Rachel Natalie Kate Emma Alice Holly Jade Amy "
    "Claire Fiona Helen Karen Linda Margaret Patricia Susan Deborah Julie Michelle Nicole Tanya Wendy Yvonne"
)
MALE_FIRST_NAMES = _words(
    "Oliver Noah Jack William Leo Lucas Thomas Henry Charlie James Ethan Mason Harrison Hudson Archie Oscar "
    "Liam Max Samuel Daniel Benjamin Joshua Matthew Ryan Luke Adam Nathan Aaron Callum Dylan Jake Tyler Kieran "
    "Andrew Brian Craig David Edward Frank Gary Graham Ian Keith Mark Neil Paul Peter Richard Simon Stephen "
    "Trevor Warren Anthony Bradley Cameron Damien Glen Jason Lachlan Mitchell Rhys Scott Shane Travis"
)
FIRST_NAMES = {"Female": FEMALE_FIRST_NAMES, "Male": MALE_FIRST_NAMES, "Other": FEMALE_FIRST_NAMES + MALE_FIRST_NAMES}

LAST_NAMES = _words(
    "Smith Jones Williams Brown Wilson Taylor Johnson White Martin Anderson Thompson Nguyen Thomas Walker Harris "
    "Lee Ryan Robinson Kelly King Davis Wright Evans Roberts Green Hall Wood Jackson Clarke Patel Khan Lewis "
    "James Phillips Mitchell Turner Campbell Parker Edwards Collins Stewart Morris Murphy Cook Rogers Morgan "
    "Cooper Peterson Bailey Reed Howard Cox Ward Richardson Watson Brooks Wood Gray Hughes Price Sanders Myers "
    "Long Ross Foster Powell Jenkins Perry Russell Sullivan Bell Coleman Butler Henderson Barnes Fisher Vasquez "
    "Simmons Graham Marshall Owens Harrison Gibson McDonald Cruz Ellis Ford Wallace Hamilton Reynolds Fraser "
    "Murray Kennedy Warren Dixon Burns Gordon Shaw Holmes Rice Hunt Black Daniels Palmer Mills Nichols Grant "
    "Knight Ferguson Stone Hawkins Dunn Perkins Hudson Spencer Gardner Stephens Payne Pierce Berry Matthews "
    "Arnold Wagner Willis Ray Watkins Olson Carroll Duncan Snyder Hart Cunningham Bradley Lane Andrews Ruiz "
    "Harper Fox Riley Armstrong Carpenter Weaver Greene Lawrence Elliott Chavez Sims Austin Peters Kelley "
    "Franklin Lawson Fields Ryan Schmidt Carr Castillo Wheeler Chapman Oliver Montgomery Richards Williamson "
    "Johnston Banks Meyer Bishop McCoy Howell Morrison Hansen Fernandez Garza Harvey Little Burton Stanley"
)

TITLES_BY_SEX = {"Female": ("Ms", "Mrs", "Miss", ""), "Male": ("Mr", ""), "Other": ("Mx", "")}
PRONOUNS = {
    "she": {
        "accusative": "her",
        "nominative": "she",
        "predicative_possessive": "hers",
        "pronominal_possessive": "her",
        "reflexive": "herself",
    },
    "he": {
        "accusative": "him",
        "nominative": "he",
        "predicative_possessive": "his",
        "pronominal_possessive": "his",
        "reflexive": "himself",
    },
    "they": {
        "accusative": "them",
        "nominative": "they",
        "predicative_possessive": "theirs",
        "pronominal_possessive": "their",
        "reflexive": "themself",
    },
}

# Hard cases: accents and CJK (unicode_names), Arabic and Hebrew (rtl_names). (first, last, ASCII e-mail stem)
UNICODE_NAMES = (
    ("José", "García Pérez", "jose.garcia"),
    ("Zoë", "Müller", "zoe.mueller"),
    ("François", "Lefèvre", "francois.lefevre"),
    ("Łukasz", "Wójcik", "lukasz.wojcik"),
    ("Søren", "Kierkegård", "soren.k"),
    ("Thị Hương", "Nguyễn", "huong.nguyen"),
    ("Siân", "Ó Briain", "sian.obriain"),
    ("Renée", "Côté", "renee.cote"),
    ("Björn", "Ångström", "bjorn.angstrom"),
    ("芳", "王", "fang.wang"),
    ("太郎", "山田", "taro.yamada"),
    ("민준", "김", "minjun.kim"),
    ("伟", "李", "wei.li"),
    ("İlkay", "Gündoğan", "ilkay.g"),
)
RTL_NAMES = (
    ("محمد", "العلي", "m.alali"),
    ("فاطمة", "حسن", "fatima.hassan"),
    ("ليلى", "خوري", "layla.khoury"),
    ("יוסף", "לוי", "yosef.levi"),
    ("נועה", "כהן", "noa.cohen"),
    ("מרים", "אברהם", "miriam.avraham"),
)

# Addresses that pass Cliniko's upper-case-only pattern once read case-insensitively, yet are not deliverable:
# the RFC forbids consecutive, leading or trailing dots and a hyphen at a label's edge. Cliniko's own pattern
# cannot hold "jo@@x" or "no-at-sign" in `email` (the OAS23 schema would reject the body), so the invalid
# e-mails planted are those its pattern lets through. `{n}` keeps each one unique (duplicates are their own case).
INVALID_EMAILS = (
    "jo..smith{n}@example.com",
    "ana{n}.@example.net",
    ".lee{n}@example.org",
    "sam{n}@example..com",
    "kim{n}@-example-.com",
)
PATIENT_EMAIL_DOMAINS = ("example.com", "example.net", "example.org", "mail.example.com", "inbox.example.net")

SUBURBS = (
    ("Richmond", "3121"),
    ("Fitzroy", "3065"),
    ("Brunswick", "3056"),
    ("St Kilda", "3182"),
    ("Hawthorn", "3122"),
    ("Footscray", "3011"),
    ("Coburg", "3058"),
    ("Elwood", "3184"),
    ("Carlton", "3053"),
    ("Prahran", "3181"),
    ("Northcote", "3070"),
    ("Camberwell", "3124"),
)
STREETS = (
    "Smith Street",
    "Chapel Street",
    "High Street",
    "Station Road",
    "Church Street",
    "Victoria Parade",
    "Albert Road",
    "Park Lane",
    "Queens Avenue",
    "Bridge Road",
    "Glenferrie Road",
    "Sydney Road",
)
OCCUPATIONS = (
    "Teacher",
    "Nurse",
    "Software developer",
    "Retired",
    "Student",
    "Electrician",
    "Accountant",
    "Barista",
    "Plumber",
    "Graphic designer",
    "Office manager",
    "Chef",
    "",
)
SEXES = ("Female", "Male", "Female", "Male", "Other")
GENDER_IDENTITY = {"Female": "Woman", "Male": "Man", "Other": "Non-binary"}

# (name, rails label, IANA id, state, city, post code, country, country code, address). The generator names
# the businesses after the clinic; the names here only document the sample.
BUSINESSES = (
    (
        "Bayside Physio & Movement",
        "Melbourne",
        "Australia/Melbourne",
        "Victoria",
        "Melbourne",
        "3000",
        "Australia",
        "AU",
        "20 Collins Street",
    ),
    (
        "Bayside Physio Brisbane",
        "Brisbane",
        "Australia/Brisbane",
        "Queensland",
        "Brisbane",
        "4000",
        "Australia",
        "AU",
        "88 Adelaide Street",
    ),
    (
        "Bayside Physio Perth",
        "Perth",
        "Australia/Perth",
        "Western Australia",
        "Perth",
        "6000",
        "Australia",
        "AU",
        "5 Hay Street",
    ),
    (
        "Bayside Physio Auckland",
        "Auckland",
        "Pacific/Auckland",
        "Auckland",
        "Auckland",
        "1010",
        "New Zealand",
        "NZ",
        "12 Queen Street",
    ),
)

CLINIC_NAMES = (
    ("Bayside Physio & Movement", "baysidephysio"),
    ("Northside Health Collective", "northsidehealth"),
    ("Harbour Osteo & Physio", "harbourosteo"),
    ("Riverbend Allied Health", "riverbendhealth"),
)

# (name, category, minutes, max attendees, colour, service price in cents, item code, telehealth)
APPOINTMENT_TYPES = (
    ("Initial Physiotherapy Consultation", "Physiotherapy", 60, 1, "#2E86DE", 12000, "PHY-INIT", False),
    ("Standard Physiotherapy Consultation", "Physiotherapy", 30, 1, "#54A0FF", 9500, "PHY-STD", False),
    ("Pilates Class", "Classes", 55, 8, "#10AC84", 3500, "CLS-PIL", False),
    ("Remedial Massage (60 min)", "Massage", 60, 1, "#EE5253", 11000, "MAS-60", False),
    ("Telehealth Review", "Physiotherapy", 20, 1, "#8395A7", 7000, "PHY-TELE", True),
    ("Hydrotherapy Group", "Classes", 45, 6, "#01A3A4", 3000, "CLS-HYD", False),
    ("Osteopathy Initial", "Osteopathy", 60, 1, "#F368E0", 13000, "OST-INIT", False),
    ("Osteopathy Follow-up", "Osteopathy", 30, 1, "#FF9FF3", 10000, "OST-FU", False),
    ("Remedial Massage (30 min)", "Massage", 30, 1, "#FF6B6B", 7000, "MAS-30", False),
    ("Extended Physiotherapy Consultation", "Physiotherapy", 45, 1, "#2E86AB", 11500, "PHY-EXT", False),
    ("Exercise Physiology Session", "Exercise Physiology", 45, 1, "#FECA57", 10500, "EP-STD", False),
    ("Workers Compensation Assessment", "Assessments", 60, 1, "#576574", 18000, "WC-ASSESS", False),
)
# Which categories each discipline treats; classes are run by physiotherapists and exercise physiologists.
DISCIPLINES = {
    "Physiotherapist": ("Physiotherapy", "Classes", "Assessments"),
    "Remedial Massage Therapist": ("Massage",),
    "Osteopath": ("Osteopathy",),
    "Exercise Physiologist": ("Exercise Physiology", "Classes"),
}
# Services that are not appointment types. (name, item type, price in cents, code)
OTHER_SERVICES = (
    ("Late cancellation fee", "Other", 5000, "FEE-LATE"),
    ("Report writing", "Other", 9000, "ADM-RPT"),
    ("Non-attendance fee", "Other", 6000, "FEE-DNA"),
)
# (name, price incl. GST in cents, cost in cents, item code)
PRODUCTS = (
    ("Theraband (medium)", 1595, 600, "PRD-TB-M"),
    ("Foam roller", 3995, 1500, "PRD-FOAM"),
    ("Heat pack", 2495, 900, "PRD-HEAT"),
    ("Kinesiology tape", 1850, 700, "PRD-TAPE"),
    ("Orthotic insoles", 6900, 2500, "PRD-ORTH"),
    ("Posture cushion", 5400, 2000, "PRD-CUSH"),
    ("Massage ball", 1200, 400, "PRD-BALL"),
    ("Ice pack", 995, 300, "PRD-ICE"),
    ("Knee brace", 4995, 1800, "PRD-KNEE"),
    ("Lumbar roll", 3495, 1200, "PRD-LUMB"),
)
SUPPLIERS = ("Physio Supplies Co", "Allied Health Wholesale", "MoveWell Distributors")
CONCESSION_TYPES = (("Pensioner", 15), ("Student", 10), ("Health Care Card", 20), ("DVA Gold Card", 0))

# Practitioners. (title, first, last, discipline). The first three are the e-mail mismatch cases, in order:
# a preferred name, a "Dr" title, a diacritics difference; their Nutshell users are built from NUTSHELL_ALIASES.
PRACTITIONERS = (
    ("", "Jonathan", "Whitfield", "Physiotherapist"),
    ("Dr", "Priya", "Raman", "Osteopath"),
    ("", "José", "Álvarez", "Remedial Massage Therapist"),
    ("", "Sarah", "Nguyen", "Physiotherapist"),
    ("", "Tom", "Becker", "Exercise Physiologist"),
    ("", "Mei", "Tanaka", "Physiotherapist"),
    ("", "Liam", "O'Connor", "Remedial Massage Therapist"),
    ("Dr", "Hannah", "Schofield", "Osteopath"),
    ("", "Aisha", "Rahman", "Physiotherapist"),
    ("", "Ben", "Kowalski", "Exercise Physiologist"),
    ("", "Grace", "Fitzgerald", "Physiotherapist"),
    ("", "Marcus", "Delaney", "Remedial Massage Therapist"),
)
INACTIVE_PRACTITIONERS = (
    ("", "Rosa", "Martinelli", "Physiotherapist"),
    ("", "Declan", "Byrne", "Remedial Massage Therapist"),
)
# Nutshell-side name and e-mail of the mismatch practitioners: (first, last, e-mail local part, domain kind).
NUTSHELL_ALIASES = (
    ("Jon", "Whitfield", "jon.w", "personal"),
    ("Dr Priya", "Raman", "praman", "clinic"),
    ("Jose", "Alvarez", "jalvarez", "clinic"),
)
# Staff who are not practitioners: (title, first, last, role, local part)
STAFF = (
    ("", "Morgan", "Hale", "administrator", "admin"),
    ("", "Chloe", "Barrett", "receptionist", "reception"),
    ("", "Ivy", "Lam", "power receptionist", "ivy.lam"),
    ("", "Derek", "Moss", "bookkeeper", "accounts"),
)
# Nutshell users with no counterpart in Cliniko.
NUTSHELL_ONLY_USERS = (("Sam", "Ortega", "sam.ortega"), ("Priscilla", "Vaughn", "p.vaughn"))

# Third-party payers (contact type_code 2): (company, e-mail local part)
INSURERS = (
    ("Medibank Private", "claims"),
    ("Bupa", "provider.claims"),
    ("HCF", "claims"),
    ("nib", "claims"),
    ("Australian Unity", "healthclaims"),
    ("HBF", "claims"),
    ("WorkSafe Victoria", "providers"),
    ("Transport Accident Commission", "providers"),
    ("Department of Veterans' Affairs", "dva.claims"),
    ("GMHBA", "claims"),
)
MEDICAL_CENTRES = (
    "Bayside Medical Centre",
    "Collins Street Clinic",
    "Northcote Family Practice",
    "St Kilda Road Specialists",
    "Richmond GP Group",
    "Harbourside Sports Medicine",
)
STANDARD_CONTACT_ROLES = ("Case manager", "Solicitor", "Personal trainer", "Employer rehab coordinator")

MEDICAL_ALERTS = (
    "Allergic to latex",
    "Pacemaker fitted",
    "Type 2 diabetes",
    "On blood thinners (warfarin)",
    "Pregnant",
    "Epilepsy",
    "Osteoporosis",
    "Allergic to arnica",
    "Recent hip replacement",
    "High blood pressure",
    "Asthma: carries inhaler",
    "Hearing impaired: prefers written notes",
)
CANCELLATION_REASONS = (
    (10, "Feeling Better"),
    (20, "Condition Worse"),
    (30, "Sick"),
    (31, "COVID-19 related"),
    (40, "Away"),
    (50, "Other"),
    (60, "Work"),
)
CANCELLATION_NOTES = (
    "Called to cancel",
    "Cancelled online",
    "Will rebook next week",
    "Left a voicemail",
    None,
)
APPOINTMENT_NOTES = (
    "Parking at rear",
    "Bring scans",
    "Prefers afternoon slots",
    "Interpreter booked",
    "Claiming through insurer",
)
REFERRAL_SOURCE_TYPES = (
    ("Google", None),
    ("Doctor referral", "Contact"),
    ("Friend or family", "Patient"),
    ("Walk-in", None),
    ("Social media", None),
)
REFERRAL_SUBCATEGORIES = {"Google": ("Search", "Maps"), "Social media": ("Instagram", "Facebook")}

# Treatment note templates: (name, [(section name, [(question, type, options)])]). Options feed
# checkboxes/radiobuttons; paragraph questions are answered in HTML.
TREATMENT_NOTE_TEMPLATES = (
    (
        "Initial Assessment",
        (
            (
                "Subjective",
                (
                    ("Presenting complaint", "paragraph", ()),
                    ("History", "paragraph", ()),
                    ("Onset", "radiobuttons", ("Sudden", "Gradual", "Unknown")),
                    ("Aggravating factors", "checkboxes", ("Sitting", "Standing", "Walking", "Lifting", "Bending")),
                ),
            ),
            (
                "Objective",
                (
                    ("Pain score (0-10)", "text", ()),
                    ("Observation", "paragraph", ()),
                    ("Body chart", "bodycharts", ()),
                ),
            ),
            ("Plan", (("Treatment plan", "paragraph", ()), ("Review date", "date", ()))),
        ),
    ),
    (
        "Follow-up (SOAP)",
        (
            (
                "SOAP",
                (
                    ("Subjective", "paragraph", ()),
                    ("Objective", "paragraph", ()),
                    ("Assessment", "paragraph", ()),
                    ("Plan", "paragraph", ()),
                    ("Progress", "radiobuttons", ("Improved", "Same", "Worse")),
                ),
            ),
        ),
    ),
    (
        "Massage Treatment",
        (
            (
                "Treatment",
                (
                    ("Areas treated", "checkboxes", ("Neck", "Shoulders", "Upper back", "Lower back", "Legs")),
                    ("Pressure", "radiobuttons", ("Light", "Medium", "Firm")),
                    ("Notes", "paragraph", ()),
                ),
            ),
        ),
    ),
    ("Class Attendance", (("Class", (("Level", "text", ()), ("Notes", "paragraph", ()))),)),
    ("Old Assessment Form", (("Assessment", (("Notes", "paragraph", ()),)),)),
)
# Which template a category's appointments use (the index into TREATMENT_NOTE_TEMPLATES) on first/later visits.
TEMPLATE_FOR_CATEGORY = {
    "Physiotherapy": (0, 1),
    "Osteopathy": (0, 1),
    "Assessments": (0, 0),
    "Exercise Physiology": (1, 1),
    "Massage": (2, 2),
    "Classes": (3, 3),
}

COMPLAINTS = (
    "lower back pain after lifting at work",
    "right shoulder pain when reaching overhead",
    "neck stiffness and headaches",
    "left knee pain on stairs",
    "ankle sprain playing netball",
    "tight hamstrings and hip pain when running",
    "wrist pain from keyboard work",
    "post-operative knee rehabilitation",
)
FINDINGS = (
    "Reduced lumbar flexion, pain at end range",
    "Positive impingement signs, full passive range",
    "Tender over upper trapezius bilaterally",
    "Mild effusion, quads lag on straight leg raise",
    "Swelling lateral malleolus, stable ligament tests",
    "Good progress since last session",
)
PLANS = (
    "Manual therapy, home exercise program reviewed",
    "Dry needling and taping; progress strengthening",
    "Soft tissue massage; stretches for home",
    "Graded return to running over four weeks",
    "Review in one week; consider imaging if no change",
)
MEMOS = (
    ("Phone call", 3, "Called to reschedule; left a message"),
    ("Phone call", 3, "Patient called asking about insurance rebates"),
    ("Other", 4, "Dropped off referral letter at reception"),
    ("Email", 2, "Emailed home exercise sheet"),
    ("SMS", 1, "Patient replied to confirm by SMS"),
)
ATTACHMENT_KINDS = (
    ("Referral letter", "application/pdf", "pdf"),
    ("Consent form", "application/pdf", "pdf"),
    ("X-ray report", "application/pdf", "pdf"),
    ("MRI image", "image/jpeg", "jpg"),
    ("Posture photo", "image/png", "png"),
    ("Exercise log", "text/plain", "txt"),
)

NUTSHELL_PEOPLE = (
    ("Alicia Grant", "Grant Family Trust"),
    ("Ray Donovan", "Donovan Builders"),
    ("Nina Patel", "Patel Consulting"),
    ("Owen Price", "Price & Co"),
    ("Tess Nguyen", ""),
)
