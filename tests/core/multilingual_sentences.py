"""Hand-written sentences per language, each one whole sentence, full of the things that fool a segmenter:
abbreviations (also before numbers: "Eq. 4", "approx. 5"), ordinal dates ("am 3. Oktober"), decimals, times and
abbreviated units ("1990 г."). Documents built from them have known sentence boundaries
(tests/core/test_sentence_languages.py, benchmarks/bench_sentence_chunker.py)."""

from __future__ import annotations

SENTENCES: dict[str, list[str]] = {
    "en": [
        "See Eq. 4 for the derivation.", "The results appear in Vol. 3 of the journal.",
        "The reaction takes approx. 5 minutes.", "Dr. Smith met Mr. Jones on Monday.",
        "The value of pi is about 3.14159.",
        "Infection by C. albicans was studied in mice.", "Prices rose by 4.5% in 2023.",
        "We used e.g. ibuprofen and aspirin.", "Fig. 2 shows the distribution of values.",
        "The meeting starts at 3 p.m. sharp.", "Is this the right answer?", "What a surprise!",
        "Smith et al. reported it (Fig. 3).", "Item No. 5 is 3.14 mm wide.", "See Sect. 2.3 and Tab. 1 for details.",
        "It was cited in Ref. 12 of the review.", "The dose was approx. 20 mg per day.",
        "Results are given in Eqs. 5 and 6.", "The study ran from Jan. 2019 to Dec. 2020.",
        "The effect was significant (p < 0.05).", "This is discussed in Ch. 7 of the book.",
        "The sample weighed ca. 3 g in total.",
    ],
    "de": [
        "Die Mauer fiel am 9. November 1989.", "Am 3. Oktober 1990 kam die Wiedervereinigung.",
        "Das Treffen beginnt um 14.30 Uhr.", "Er wohnt in der Goethestr. 12 in Berlin.",
        "Wir brauchen z. B. Mehl, Zucker und Eier.", "Der Preis beträgt ca. 5 Euro.",
        "Dr. Müller arbeitet im 2. Stock.",
        "Das steht in Abs. 3 des Gesetzes.", "Wie geht es dir?", "Das ist ja unglaublich!",
        "Die Firma wurde im 19. Jahrhundert gegründet.", "Sie kam am 1. Januar 2000 zur Welt.",
        "Das Buch hat ca. 300 Seiten.", "Der Zug fährt um 8 Uhr ab.", "Wir sehen uns am 24. Dezember wieder.",
        "Das Gesetz gilt seit dem 1. Mai 2004.", "Vgl. dazu Kap. 4 des Berichts.", "Es geht u. a. um die Kosten.",
    ],
    "fr": [
        "La réunion a lieu le 3 octobre 2020.", "Il a vu p. ex. la tour Eiffel.", "M. Dupont est arrivé hier.",
        "Le prix est de 3,50 euros.", "Voir la p. 12 du rapport.", "Où est la gare ?", "Quelle belle journée !",
        "Il habite av. Foch à Paris.", "Le XIXe siècle fut riche en inventions.", "Mme Martin est partie à 18 h.",
        "Il est né le 1er mai 1990.", "Nous avons environ 5 chats.",
    ],
    "es": [
        "El Sr. García llegó ayer.", "Vio la pág. 5 del libro.", "El precio es de 3,50 euros.",
        "¿Dónde está la estación?", "¡Qué día tan bonito!", "La Sra. López vive en Madrid.",
        "Nació el 5 de mayo de 1990.", "Hay aprox. 20 personas en la sala.", "El Dr. Pérez trabaja aquí.",
        "Madrid es la capital de España.",
    ],
    "it": [
        "Il Sig. Rossi è arrivato ieri.", "La riunione è il 3 ottobre.", "Il prezzo è di 3,50 euro.",
        "Dove si trova la stazione?", "Che bella giornata!", "Roma è la capitale d'Italia.",
        "Vedi pag. 12 del documento.", "Il Dott. Bianchi lavora qui.",
    ],
    "pt": [
        "O Sr. Silva chegou ontem.", "A reunião é no dia 3 de outubro.", "O preço é de 3,50 euros.",
        "Onde fica a estação?", "Que dia bonito!", "Lisboa é a capital de Portugal.", "A Dra. Costa trabalha aqui.",
        "Veja a pág. 12 do relatório.",
    ],
    "nl": [
        "Dhr. Jansen kwam gisteren aan.", "De vergadering is op 3 oktober.", "De prijs is 3,50 euro.",
        "Waar is het station?", "Wat een mooie dag!", "Amsterdam is de hoofdstad van Nederland.",
        "Zie blz. 12 van het rapport.", "Het duurt ca. 5 minuten.",
    ],
    "ru": [
        "Он родился в 1990 г. в Москве.", "Встреча состоится 5 мая в 10 часов.",
        "Мы купили хлеб, молоко и т. д. в магазине.", "Температура была около 3,5 градусов.", "Как тебя зовут?",
        "Это просто замечательно!", "Проф. Иванов прочитал лекцию.", "Население города составляет 1,2 млн человек.",
        "Это произошло в XX в. в Европе.", "Москва является столицей России.", "См. рис. 3 в конце статьи.",
        "Это было в 2005 г. летом.",
    ],
    "pl": [
        "Spotkanie odbędzie się 3 października.", "Cena wynosi 3,50 zł.", "Gdzie jest dworzec?", "Co za piękny dzień!",
        "Warszawa jest stolicą Polski.", "Dr Kowalski pracuje tutaj.", "Zob. str. 12 raportu.",
        "Urodził się w 1990 r. w Krakowie.",
    ],
    "zh": [
        "我喜欢吃饭。", "今天天气很好！", "你呢？", "北京是中国的首都。",
        "价格是3.5元。", "他说：“明天见。”", "这本书有300页。",
    ],
    "ja": [
        "今日は晴れです。", "明日は雨でしょう。", "東京は日本の首都です。",
        "本当ですか？", "値段は3.5ドルです。", "すごい！",
    ],
    "ko": [
        "오늘은 날씨가 좋습니다.", "서울은 한국의 수도입니다.", "이것은 정말 놀랍다!",
        "어디에 가세요?", "가격은 3.5달러입니다.",
    ],
    "ar": [
        "ذهبت إلى المدرسة صباحا.", "القاهرة هي عاصمة مصر.", "أين المحطة؟",
        "ما أجمل هذا اليوم!", "وصل الدكتور أحمد أمس.",
    ],
}

#: Thai has no sentence punctuation: a space ends a sentence or a clause, and only a model can tell which.
THAI = [
    "ผมชอบกินข้าวมาก", "ผมไปโรงเรียนทุกวัน", "วันนี้อากาศดีมาก", "เมื่อวานฝนตกหนัก",
    "ประเทศไทยมีประชากรประมาณ 70 ล้านคน", "กรุงเทพมหานครเป็นเมืองหลวงของประเทศไทย",
    "เขาทำงานที่โรงพยาบาลมาสิบปีแล้ว", "แม่ของฉันทำอาหารอร่อยที่สุด",
]

#: Languages whose sentences are written without a space between them.
UNSPACED = frozenset({"zh", "ja"})
