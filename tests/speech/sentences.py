"""Twenty short conversational test sentences (written for these tests; no digits, so WER needs no
number normalisation)."""

SENTENCES: list[str] = [
    "Hello, how are you doing today?",
    "I would like to book a table for two people tonight.",
    "Can you tell me what the weather will be like tomorrow?",
    "Sure, I can help you with that right away.",
    "My favourite colour is green, what is yours?",
    "Please remind me to call my mother this evening.",
    "The train to the city leaves in about ten minutes.",
    "I think we should take the long road through the forest.",
    "That sounds like a wonderful idea for the weekend.",
    "Could you play some quiet music while I read?",
    "We need to buy milk, bread and a few apples.",
    "Sorry, I did not catch what you just said.",
    "The meeting has been moved to Thursday afternoon.",
    "How far is the nearest station from here?",
    "I really enjoyed the story you told me yesterday.",
    "Let me know when you are ready to start.",
    "The children are playing outside in the garden.",
    "What time does the library close on Sunday?",
    "Thank you very much, that was very helpful.",
    "Goodbye, and have a lovely day.",
]
