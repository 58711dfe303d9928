//! The vocabulary of the sample data: names, medicines, organisations.

/// Family names, as the software stores them (upper case, no accents).
#[rustfmt::skip]
pub const SURNAMES: &[&str] = &[
    "MARTIN", "BERNARD", "DUBOIS", "THOMAS", "ROBERT", "RICHARD", "PETIT", "DURAND", "LEROY",
    "MOREAU", "SIMON", "LAURENT", "LEFEBVRE", "MICHEL", "GARCIA", "DAVID", "BERTRAND", "ROUX",
    "VINCENT", "FOURNIER", "MOREL", "GIRARD", "ANDRE", "MERCIER", "DUPONT", "LAMBERT", "BONNET",
    "FRANCOIS", "MARTINEZ", "LEGRAND", "GARNIER", "FAURE", "ROUSSEAU", "BLANC", "GUERIN", "MULLER",
    "HENRY", "ROUSSEL", "NICOLAS", "PERRIN", "MORIN", "MATHIEU", "CLEMENT", "GAUTHIER", "DUMONT",
    "LOPEZ", "FONTAINE", "CHEVALIER", "ROBIN", "MASSON", "SANCHEZ", "GERARD", "NGUYEN", "BOYER",
    "DENIS", "LEMAIRE", "DUVAL", "JOLY", "GAUTIER", "ROGER", "ROCHE", "ROY", "NOEL", "MEYER",
    "LUCAS", "MEUNIER", "JEAN", "PEREZ", "MARCHAND", "DUFOUR", "BLANCHARD", "MARIE", "BARBIER",
    "BRUN", "DUMAS", "BRUNET", "SCHMITT", "LEROUX", "COLIN", "FERNANDEZ", "PIERRE", "RENARD",
];

/// Given names.
#[rustfmt::skip]
pub const FIRST_NAMES: &[&str] = &[
    "Marie", "Jean", "Nathalie", "Pierre", "Isabelle", "Michel", "Sylvie", "Philippe", "Catherine",
    "Alain", "Martine", "Patrick", "Christine", "Nicolas", "Sophie", "Christophe", "Valerie",
    "Stephane", "Sandrine", "Laurent", "Veronique", "Frederic", "Celine", "David", "Nicole",
    "Olivier", "Chantal", "Eric", "Monique", "Thierry", "Francoise", "Julien", "Aurelie", "Yves",
    "Helene", "Bernard", "Emma", "Louis", "Jade", "Gabriel", "Louise", "Arthur", "Alice", "Jules",
    "Chloe", "Hugo", "Lina", "Paul", "Rose", "Leon", "Anna", "Raphael", "Mila", "Adam", "Ines",
];

/// Medicine names (the catalogue adds strengths and packs).
#[rustfmt::skip]
pub const MEDICINES: &[&str] = &[
    "DOLIPRANE", "PARACETAMOL BIOGARAN", "IBUPROFENE MYLAN", "AMOXICILLINE ARROW", "LEVOTHYROX",
    "METFORMINE SANDOZ", "ATORVASTATINE EG", "OMEPRAZOLE TEVA", "AMLODIPINE ZENTIVA", "KARDEGIC",
    "SPASFON", "VENTOLINE", "RAMIPRIL BIOGARAN", "BISOPROLOL ARROW", "TRAMADOL EG", "SERETIDE",
    "ELIQUIS", "XARELTO", "ESOMEPRAZOLE MYLAN", "SMECTA", "EFFERALGAN", "DAFALGAN", "GAVISCON",
    "FORLAX", "LAMALINE", "PREVISCAN", "TAHOR", "CRESTOR", "INEXIUM", "PERMIXON", "DUPHALAC",
    "MOPRAL", "LYRICA", "XANAX", "STILNOX", "DEROXAT", "SERESTA", "HELICIDINE", "MAXILASE",
    "ACTISKENAN", "TOPALGIC", "ZYMAD", "UVEDOSE", "SPECIAFOLDINE", "TARDYFERON", "ORELOX",
    "AUGMENTIN", "CLAMOXYL", "PYOSTACINE", "BETADINE", "BIAFINE", "VOLTARENE", "NUROFEN",
];

/// Strengths and forms, appended to a medicine name.
#[rustfmt::skip]
pub const FORMS: &[&str] = &[
    "500MG CPR", "1G CPR", "1000MG CPR EFF", "20MG GELULE", "5MG CPR SEC", "75UG CPR",
    "100MG SACHET", "2.5MG CPR PELLIC", "40MG GELULE GASTRO", "SIROP 150ML", "SUSP BUV 100ML",
    "CREME 50G", "GEL 60G", "COLLYRE 10ML", "SOL INHAL", "SUPPO", "INJ 1ML", "PDR ORALE",
];

/// Pack sizes.
#[rustfmt::skip]
pub const PACKS: &[&str] = &[
    "B/8", "B/14", "B/16", "B/28", "B/30", "B/60", "B/90", "FL/1",
];

/// Laboratories.
#[rustfmt::skip]
pub const LABS: &[&str] = &[
    "SANOFI", "BIOGARAN", "MYLAN", "ARROW", "TEVA", "SANDOZ", "ZENTIVA", "EG LABO", "PFIZER",
    "BAYER", "GSK", "SERVIER", "PIERRE FABRE", "UPSA", "IPSEN", "MERCK", "BMS",
];

/// Health insurance bodies (regime, fund, centre).
#[rustfmt::skip]
pub const INSURERS: &[&str] = &[
    "01 751 0000", "01 921 0000", "01 931 0000", "01 941 0000", "01 691 0000", "01 131 0000",
    "02 075 0000", "03 117 0000", "01 310 8000", "05 501 0000", "10 899 0000", "01 330 0000",
];

/// Complementary insurers.
#[rustfmt::skip]
pub const MUTUELLES: &[&str] = &[
    "MGEN", "HARMONIE MUTUELLE", "MALAKOFF HUMANIS", "AG2R", "MUTUELLE GENERALE", "ALMERYS",
    "VIAMEDIS", "SP SANTE", "ISANTE", "KORELIO",
];

/// Towns.
#[rustfmt::skip]
pub const TOWNS: &[&str] = &[
    "PARIS", "LYON", "MARSEILLE", "TOULOUSE", "NANTES", "LILLE", "RENNES", "REIMS", "DIJON",
    "ANGERS", "NIMES", "TOURS", "LIMOGES", "AMIENS", "METZ", "BESANCON", "ORLEANS", "ROUEN", "CAEN",
    "NANCY", "PAU", "LA ROCHELLE", "CHOLET", "VANNES", "BEZIERS", "COLMAR", "QUIMPER",
];

/// Dosage instructions.
#[rustfmt::skip]
pub const DOSAGES: &[&str] = &[
    "1 CPR MATIN", "1 CPR MATIN ET SOIR", "2 CPR 3 FOIS PAR JOUR", "1 GEL AU COUCHER",
    "1 SACHET SI DOULEUR", "2 BOUFFEES SI BESOIN", "1 APPLICATION MATIN ET SOIR",
    "1 CPR PAR JOUR PENDANT 6 JOURS", "1 GOUTTE 3 FOIS PAR JOUR", "SELON INR",
];

/// Ways of paying.
#[rustfmt::skip]
pub const PAYMENTS: &[&str] = &[
    "CB", "ESPECES", "CHEQUE", "TIERS PAYANT", "SANS CONTACT",
];

/// Words of office letters and reports.
#[rustfmt::skip]
pub const PROSE: &[&str] = &[
    "ordonnance", "patient", "traitement", "renouvellement", "officine", "pharmacien", "delivrance",
    "posologie", "interaction", "dossier", "pharmaceutique", "stupefiant", "registre", "inventaire",
    "commande", "grossiste", "livraison", "retour", "peremption", "qualite", "procedure",
    "formation", "vaccination", "entretien", "conseil", "facture", "remise", "tiers", "payant",
    "mutuelle", "caisse", "assurance", "maladie", "le", "la", "les", "de", "du", "des", "et",
    "pour", "avec", "sans", "dans", "sur", "au", "aux", "un", "une",
];
