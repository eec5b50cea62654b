"""Phrase templates for the synthetic, NON-EXPLICIT corpus, by stage and language.

Every line here is written to be safe to read: secrecy, isolation, age probing, gifts, moving to
another app, meeting, requests for "a photo" or a webcam stated without any description, and
threats to "share it". The ``sexual`` stage uses placeholder-level words only (the lexicon words the
detector looks for), never a sentence that describes anything.

Slots: {game} {app} {gift} {place} {day} {name}. Templates are split by index (mod 4) into exemplars,
training and held-out wording (see corpus.py).
"""

from __future__ import annotations

SLOTS: dict[str, dict[str, list[str]]] = {
    "en": {
        "game": ["Fortnite", "Minecraft", "Roblox", "Among Us", "Rocket League"],
        "app": ["Snapchat", "WhatsApp", "Discord", "Telegram", "Instagram"],
        "gift": ["robux", "v-bucks", "a gift card", "some skins", "gems"],
        "place": ["the park", "the mall", "the station", "the cinema"],
        "day": ["Saturday", "tomorrow", "after school", "this weekend"],
        "name": ["Sam", "Alex", "Jo", "Max", "Kim"],
    },
    "es": {
        "game": ["Fortnite", "Minecraft", "Roblox"],
        "app": ["WhatsApp", "Snapchat", "Telegram", "Instagram"],
        "gift": ["robux", "pavos", "gemas"],
        "place": ["el parque", "el centro comercial", "la estación"],
        "day": ["el sábado", "mañana", "después de clase"],
        "name": ["Lucía", "Pablo", "Sofía", "Diego"],
    },
    "fr": {
        "game": ["Fortnite", "Minecraft", "Roblox"],
        "app": ["Snapchat", "WhatsApp", "Telegram", "Instagram"],
        "gift": ["robux", "v-bucks", "gemmes"],
        "place": ["le parc", "le centre commercial", "la gare"],
        "day": ["samedi", "demain", "après l'école"],
        "name": ["Léa", "Hugo", "Chloé", "Louis"],
    },
    "de": {
        "game": ["Fortnite", "Minecraft", "Roblox"],
        "app": ["WhatsApp", "Snapchat", "Telegram", "Instagram"],
        "gift": ["Robux", "V-Bucks", "Geld"],
        "place": ["dem Park", "dem Einkaufszentrum", "dem Bahnhof"],
        "day": ["Samstag", "morgen", "nach der Schule"],
        "name": ["Lena", "Paul", "Mia", "Jonas"],
    },
}

# Grooming-stage lines said by the sender of interest.
STAGE_TEMPLATES: dict[str, dict[str, list[str]]] = {
    "en": {
        "rapport": [
            "you're so mature for your age",
            "you're not like the other kids, you really get me",
            "no one understands you like i do",
            "i've never talked to anyone like you before",
            "we have a special connection don't we",
            "you're really smart, smarter than people my age",
            "you're my favourite person to talk to",
            "honestly you seem older than you are, so grown up",
        ],
        "probing": [
            "how old are you btw?",
            "are your parents home right now?",
            "where do you live?",
            "is anyone else home with you?",
            "what grade are you in?",
            "do your parents check your phone?",
            "which school do you go to?",
            "so who else is in the house with you tonight",
            "are you alone at the moment?",
            "when do your parents go to bed",
            "what's your age, if you don't mind me asking",
            "does your mum look through your messages",
        ],
        "secrecy": [
            "this is our little secret ok",
            "don't tell your parents about me",
            "keep this between us",
            "nobody needs to know we talk",
            "delete our chat after, just in case",
            "your parents wouldn't understand us",
            "don't tell anyone about this",
            "promise me you won't mention me to your family",
            "just between you and me, alright?",
            "you can only trust me",
            "it's better if your friends don't hear about this",
            "make sure you clear these messages later",
        ],
        "isolation": [
            "add me on {app}",
            "let's talk on {app} instead, it's more private",
            "do you have {app}?",
            "what's your snap?",
            "let's move this somewhere private",
            "text me on {app}, this app is boring",
            "your friends don't care about you like i do",
            "this chat gets checked, let's use another app",
            "message me on {app} later",
            "what's your number?",
            "you don't need them, you have me",
            "there's another app where nobody can see what we say",
        ],
        "gifts": [
            "i'll send you some {gift}",
            "i can buy you {gift} if you want",
            "want free robux?",
            "let me get you a new phone",
            "i bought you a present",
            "i'll pay for your next skin",
            "i can get you anything you want from the shop",
            "i'll give you {gift}, no catch",
            "send me your address so i can send you a gift",
            "i'll buy you something nice",
            "i'll send you money for the game",
            "how about i top up your account for you",
        ],
        "photos": [
            "send me a pic",
            "can i see a photo of you?",
            "turn on your cam",
            "send a selfie of yourself",
            "what do you look like?",
            "let's video call",
            "show me a picture, i showed you mine",
            "put your camera on for me",
            "send me another photo",
            "facetime me tonight",
            "can i have a picture of you?",
            "i just want to see your face, send one",
        ],
        "sexual": [
            "you look sexy",
            "you're so sexy",
            "that's sexy",
            "i think you're sexy",
            "sexy",
            "you're sexy, you know that",
            "so sexy",
            "you sound sexy",
        ],
        "pressure": [
            "i'll share the pics with everyone unless you send more",
            "if you really loved me you'd do it",
            "you owe me after everything i bought you",
            "your friends will see the photos if you don't answer",
            "do it now or else",
            "i'm going to post your pictures",
            "you have ten minutes",
            "after all i've done for you",
            "your parents will see it unless you do what i say",
            "answer right now",
            "i'll send it to your school",
            "if you stop talking to me i'll show your family",
        ],
        "meeting": [
            "we should meet in person",
            "meet me at {place} {day}",
            "i can pick you up after school",
            "where can we meet?",
            "let's hang out this weekend, just us",
            "come alone ok",
            "i could drive over to you {day}",
            "don't bring anyone",
            "wanna meet up sometime?",
            "i'll come and get you from {place}",
            "let's meet somewhere quiet {day}",
            "i can come to see you, where's good",
        ],
    },
    "es": {
        "rapport": ["eres muy madura para tu edad", "nadie te entiende como yo", "tenemos una conexión especial", "eres diferente a los demás"],
        "probing": ["¿cuántos años tienes?", "¿están tus padres en casa?", "¿dónde vives?", "¿estás sola en casa?", "¿a qué colegio vas?", "¿tus padres revisan tu móvil?"],
        "secrecy": ["es nuestro secreto", "no se lo digas a nadie", "queda entre nosotros", "borra los mensajes después", "tus padres no lo entenderían", "no se lo cuentes a tus padres"],
        "isolation": ["hablemos por {app}", "pásame tu número", "sigamos por {app}, es más privado", "tus padres no te entienden", "pásame tu snap"],
        "gifts": ["te doy robux", "te regalo lo que quieras", "te compro algo bonito", "te mando dinero para el juego", "te regalo gemas"],
        "photos": ["mándame una foto", "enciende tu cámara", "envíame un selfie", "pásame otra foto"],
        "sexual": ["eres muy sexy", "qué sexy"],
        "pressure": ["voy a compartir las fotos a menos que me mandes más", "si de verdad me quisieras lo harías", "me lo debes", "tienes diez minutos"],
        "meeting": ["quedamos en persona", "te recojo después de clase", "nos vemos mañana en {place}", "ven sola", "veámonos el sábado"],
    },
    "fr": {
        "rapport": ["tu es très mature pour ton âge", "personne ne te comprend comme moi", "on a une connexion spéciale", "tu es vraiment mature"],
        "probing": ["tu as quel âge ?", "tes parents sont là ?", "où tu habites ?", "tu es seule à la maison ?", "c'est quoi ton école ?", "tes parents regardent ton téléphone ?"],
        "secrecy": ["c'est notre petit secret", "ne dis rien à personne", "ça reste entre nous", "efface nos messages", "tes parents ne comprendraient pas", "ne le dis à personne"],
        "isolation": ["ajoute-moi sur {app}", "on continue sur {app}", "donne-moi ton numéro", "tes parents ne te comprennent pas", "donne-moi ton snap"],
        "gifts": ["je t'offre des robux", "je t'achète ce que tu veux", "je te donne des gemmes", "je t'envoie de l'argent pour le jeu", "je t'achète quelque chose"],
        "photos": ["envoie-moi une photo", "allume ta caméra", "montre-moi des photos", "envoie-moi un selfie"],
        "sexual": ["tu es sexy", "trop sexy"],
        "pressure": ["je vais partager les photos si tu ne réponds pas", "si tu m'aimais vraiment tu le ferais", "tu me le dois", "tu as dix minutes"],
        "meeting": ["on se voit en vrai ?", "je peux te chercher après l'école", "on se voit demain à {place}", "viens seule", "on se rejoint samedi"],
    },
    "de": {
        "rapport": ["du bist so reif für dein alter", "niemand versteht dich so wie ich", "wir haben eine besondere verbindung", "du bist echt erwachsen"],
        "probing": ["wie alt bist du?", "sind deine eltern zu hause?", "wo wohnst du?", "bist du allein zu hause?", "auf welche schule gehst du?", "kontrollieren deine eltern dein handy?"],
        "secrecy": ["das ist unser kleines geheimnis", "sag es niemandem", "das bleibt unter uns", "lösch unsere nachrichten", "deine eltern würden das nicht verstehen", "sag deinen eltern nichts"],
        "isolation": ["schreib mir auf {app}", "gib mir deine nummer", "deine eltern verstehen dich nicht", "schreib mir bei {app}, da ist es privater"],
        "gifts": ["ich schenke dir robux", "ich kaufe dir was schönes", "ich schicke dir geld für das spiel", "ich gebe dir v-bucks"],
        "photos": ["schick mir ein foto", "mach deine kamera an", "zeig mir ein bild", "schick mir mal ein selfie"],
        "sexual": ["du bist sexy", "voll sexy"],
        "pressure": ["ich werde die bilder teilen", "wenn du mich wirklich magst machst du es", "du schuldest mir was", "sonst zeige ich es allen", "du hast zehn minuten"],
        "meeting": ["lass uns treffen", "ich hole dich ab", "treffen wir uns {day} bei {place}", "komm allein", "wollen wir uns treffen?"],
    },
}

# Ordinary chat, said by anyone.
NEUTRAL: dict[str, list[str]] = {
    "en": [
        "hey", "hi :)", "lol", "haha yeah", "what are you up to", "did you see the new {game} update",
        "i'm so bored", "that level was hard", "gg", "nice one", "i have homework", "school was ok",
        "what music do you like", "my dog is so funny", "brb", "ok", "cool", "same", "i'm back",
        "what's your favourite {game} skin", "i got a new high score", "that's funny", "yeah me too",
        "i watched a film yesterday", "it's raining here", "what did you have for lunch",
    ],
    "es": ["hola", "jaja", "qué haces", "estoy aburrida", "¿viste la actualización de {game}?", "vale", "tengo deberes", "qué guay"],
    "fr": ["salut", "mdr", "tu fais quoi", "je m'ennuie", "t'as vu la mise à jour de {game} ?", "ok", "j'ai des devoirs", "trop bien"],
    "de": ["hallo", "haha", "was machst du", "mir ist langweilig", "hast du das neue {game} update gesehen?", "ok", "ich hab hausaufgaben", "cool"],
}

# Hard negatives: benign lines that share words with indicators. Keyed by scenario.
HARD_NEGATIVES: dict[str, dict[str, list[str]]] = {
    "en": {
        "gamers": [
            "add me on {app} so we can play {game} later", "what's your {game} username", "how old are you? i'm 12",
            "do you have {app}? the whole class is on it", "let's play {game} after school", "i'll send you some gems in the game when i get more",
            "gg you're really good", "my mum says i can play till 8", "are your parents making you do homework too lol",
            "my parents check my phone sometimes, so annoying", "send me a pic of your build", "we should make a team",
        ],
        "parent": [
            "are you home yet?", "dinner at 7, don't be late", "don't tell dad about the surprise party!", "it's our secret until his birthday",
            "i'll buy you a new phone for your birthday", "send me a photo of the homework sheet", "i'll pick you up after school",
            "where are you? i'm outside {place}", "did you finish your homework", "love you, see you at home", "is grandma with you?",
            "keep the present a secret from your sister",
        ],
        "teacher": [
            "please upload a photo of your worksheet", "what grade did you get on the test", "remember the school trip is {day}",
            "parents must sign the form", "meet at the school gate at 8", "don't tell the others the quiz answers",
            "great work today, you're very mature about group work", "ask your parents to email me",
        ],
        "adults": [
            "how old is your son now?", "where do you live these days?", "let's meet for coffee {day}", "add me on {app}",
            "what's your number, i'll text you the address", "i'm 34 and still can't cook", "is anyone home to take the parcel?",
            "my kids are 8 and 11", "keep it a secret, it's a surprise party for Jo", "i'll send you the money for the tickets",
            "we should meet in person at the conference", "send me a photo of the receipt",
        ],
        "friends": [
            "what's your snap? mine is sk8r_{name}", "add me on {app} we're the same age lol", "meet me at {place} {day} with the others",
            "don't tell anyone i failed the test haha", "our secret handshake is the best", "i bought you a present for your birthday!",
            "let's video call to do the homework", "send me a selfie of your new haircut", "are your parents home? can i come over to play",
            "you're my best friend", "we should hang out this weekend", "what music are you into",
        ],
    },
    "es": {
        "gamers": ["agrégame en {app} para jugar {game}", "¿cuántos años tienes? yo 12", "te regalo gemas en el juego"],
        "parent": ["¿ya estás en casa?", "no se lo digas a papá, es una sorpresa", "te recojo después de clase"],
        "adults": ["quedamos para un café el sábado", "pásame tu número y te mando la dirección", "mis hijos tienen 8 y 11 años"],
        "friends": ["pásame tu snap", "nos vemos en el parque con los demás", "es nuestro secreto, la fiesta sorpresa"],
    },
    "fr": {
        "gamers": ["ajoute-moi sur {app} pour jouer à {game}", "tu as quel âge ? moi 12", "je te donne des gemmes dans le jeu"],
        "parent": ["tu es rentrée ?", "ne dis rien à papa, c'est une surprise", "je peux te chercher après l'école"],
        "adults": ["on se voit pour un café samedi", "donne-moi ton numéro, je t'envoie l'adresse", "mes enfants ont 8 et 11 ans"],
        "friends": ["donne-moi ton snap", "on se voit au parc avec les autres", "c'est notre secret, la fête surprise"],
    },
    "de": {
        "gamers": ["schreib mir auf {app} wir spielen {game}", "wie alt bist du? ich bin 12", "ich gebe dir gems im spiel"],
        "parent": ["bist du schon zu hause?", "sag papa nichts, es ist eine überraschung", "ich hole dich ab nach der schule"],
        "adults": ["treffen wir uns samstag auf einen kaffee", "gib mir deine nummer, ich schicke die adresse", "meine kinder sind 8 und 11"],
        "friends": ["gib mir deinen snap", "wir treffen uns im park mit den anderen", "das ist unser geheimnis, die überraschungsparty"],
    },
}

# Replies from the person being contacted.
REPLIES: dict[str, list[str]] = {
    "en": ["ok", "idk", "lol", "maybe", "why?", "haha", "yeah", "i guess", "um ok", "sure", "no", "thanks", "i have to go soon"],
    "es": ["vale", "no sé", "jaja", "¿por qué?", "bueno", "gracias"],
    "fr": ["ok", "je sais pas", "mdr", "pourquoi ?", "d'accord", "merci"],
    "de": ["ok", "weiß nicht", "haha", "warum?", "na gut", "danke"],
}
