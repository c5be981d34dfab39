"""A hand-made arith corpus for the knowledge-graph and thinking-data tests (exact nodes and edges known)."""

from selfimprove.tasks.task import Task

T1 = Task(
    "t1",
    "Tom has 12 apples. He gives away 5 of them. How many apples does Tom have now?",
    "7",
    "He gives away 5, so 12-5=<<12-5=7>>7 apples.\n#### 7",
)
T2 = Task(
    "t2",
    "Mia works 3 hours and earns $8 an hour. She spends $4 on lunch. How much money does Mia have now?",
    "20",
    "She works 3 hours at 8 an hour, so 3*8=<<3*8=24>>24 dollars.\n"
    "She spends 4, so 24-4=<<24-4=20>>20 dollars.\n#### 20",
)
T3 = Task(
    "t3",
    "Ben buys 4 boxes of pears with 6 pears in each box. He packs them into bags of 3. "
    "How many bags does Ben have now?",
    "8",
    "4 boxes of 6, so 4*6=<<4*6=24>>24 pears.\nHe packs them in bags of 3, so 24/3=<<24/3=8>>8 bags.\n#### 8",
)
# GSM8K train row 0: a sentence form no arith template has ("48 of her friends", "half as many")
T4 = Task(
    "t4",
    "Natalia sold clips to 48 of her friends in April, and then she sold half as many clips in May. How many "
    "clips did Natalia sell altogether in April and May?",
    "72",
    "Natalia sold 48/2 = <<48/2=24>>24 clips in May.\n"
    "Natalia sold 48+24 = <<48+24=72>>72 clips altogether in April and May.\n#### 72",
)
CORPUS = [T1, T2, T3, T4]
