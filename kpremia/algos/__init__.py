"""kpremia.algos"""
